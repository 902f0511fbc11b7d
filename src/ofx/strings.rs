//! OpenFX string constants (values from the specification; each name is its own value unless noted).
use std::ffi::CStr;

pub const PLUGIN_API: &CStr = c"OfxImageEffectPluginAPI";

// actions
pub const ACTION_LOAD: &CStr = c"OfxActionLoad";
pub const ACTION_UNLOAD: &CStr = c"OfxActionUnload";
pub const ACTION_DESCRIBE: &CStr = c"OfxActionDescribe";
pub const ACTION_DESCRIBE_IN_CONTEXT: &CStr = c"OfxImageEffectActionDescribeInContext";
pub const ACTION_CREATE_INSTANCE: &CStr = c"OfxActionCreateInstance";
pub const ACTION_DESTROY_INSTANCE: &CStr = c"OfxActionDestroyInstance";
pub const ACTION_GET_CLIP_PREFERENCES: &CStr = c"OfxImageEffectActionGetClipPreferences";
pub const ACTION_GET_ROD: &CStr = c"OfxImageEffectActionGetRegionOfDefinition";
pub const ACTION_GET_FRAMES_NEEDED: &CStr = c"OfxImageEffectActionGetFramesNeeded";
pub const ACTION_IS_IDENTITY: &CStr = c"OfxImageEffectActionIsIdentity";
pub const ACTION_BEGIN_SEQUENCE_RENDER: &CStr = c"OfxImageEffectActionBeginSequenceRender";
pub const ACTION_RENDER: &CStr = c"OfxImageEffectActionRender";
pub const ACTION_END_SEQUENCE_RENDER: &CStr = c"OfxImageEffectActionEndSequenceRender";
pub const ACTION_INSTANCE_CHANGED: &CStr = c"OfxActionInstanceChanged";
pub const ACTION_PURGE_CACHES: &CStr = c"OfxActionPurgeCaches";

// suites
pub const SUITE_PROPERTY: &CStr = c"OfxPropertySuite";
pub const SUITE_IMAGE_EFFECT: &CStr = c"OfxImageEffectSuite";
pub const SUITE_PARAMETER: &CStr = c"OfxParameterSuite";
pub const SUITE_MEMORY: &CStr = c"OfxMemorySuite";
pub const SUITE_MESSAGE: &CStr = c"OfxMessageSuite";
pub const SUITE_PROGRESS: &CStr = c"OfxProgressSuite";
pub const SUITE_TIMELINE: &CStr = c"OfxTimeLineSuite";

// contexts
pub const CONTEXT_GENERAL: &CStr = c"OfxImageEffectContextGeneral";
pub const CONTEXT_FILTER: &CStr = c"OfxImageEffectContextFilter";
pub const CONTEXT_TRANSITION: &CStr = c"OfxImageEffectContextTransition";

// clips and mandated params
pub const CLIP_OUTPUT: &CStr = c"Output";
pub const CLIP_SOURCE: &CStr = c"Source";
pub const CLIP_SOURCE_FROM: &CStr = c"SourceFrom";
pub const CLIP_SOURCE_TO: &CStr = c"SourceTo";
pub const PARAM_TRANSITION: &CStr = c"Transition";

// depths, components
pub const BIT_DEPTH_BYTE: &CStr = c"OfxBitDepthByte";
pub const BIT_DEPTH_SHORT: &CStr = c"OfxBitDepthShort";
pub const BIT_DEPTH_FLOAT: &CStr = c"OfxBitDepthFloat";
pub const COMPONENT_RGBA: &CStr = c"OfxImageComponentRGBA";
pub const COMPONENT_RGB: &CStr = c"OfxImageComponentRGB";

// generic properties
pub const PROP_TIME: &CStr = c"OfxPropTime";
pub const PROP_NAME: &CStr = c"OfxPropName";
pub const PROP_LABEL: &CStr = c"OfxPropLabel";
pub const PROP_SHORT_LABEL: &CStr = c"OfxPropShortLabel";
pub const PROP_LONG_LABEL: &CStr = c"OfxPropLongLabel";
pub const PROP_PLUGIN_DESCRIPTION: &CStr = c"OfxPropPluginDescription";
pub const PROP_INSTANCE_DATA: &CStr = c"OfxPropInstanceData";
pub const PROP_TYPE: &CStr = c"OfxPropType";

// image effect properties
pub const IE_PROP_SUPPORTED_CONTEXTS: &CStr = c"OfxImageEffectPropSupportedContexts";
pub const IE_PROP_SUPPORTED_PIXEL_DEPTHS: &CStr = c"OfxImageEffectPropSupportedPixelDepths";
pub const IE_PROP_SUPPORTED_COMPONENTS: &CStr = c"OfxImageEffectPropSupportedComponents";
pub const IE_PLUGIN_PROP_GROUPING: &CStr = c"OfxImageEffectPluginPropGrouping";
pub const IE_PLUGIN_RENDER_THREAD_SAFETY: &CStr = c"OfxImageEffectPluginRenderThreadSafety";
pub const IE_PLUGIN_PROP_HOST_FRAME_THREADING: &CStr =
    c"OfxImageEffectPluginPropHostFrameThreading";
pub const IE_PROP_SUPPORTS_TILES: &CStr = c"OfxImageEffectPropSupportsTiles";
pub const IE_PROP_SUPPORTS_MULTI_RESOLUTION: &CStr = c"OfxImageEffectPropSupportsMultiResolution";
pub const IE_PROP_TEMPORAL_CLIP_ACCESS: &CStr = c"OfxImageEffectPropTemporalClipAccess";
pub const IE_PROP_CONTEXT: &CStr = c"OfxImageEffectPropContext";
pub const IE_PROP_PIXEL_DEPTH: &CStr = c"OfxImageEffectPropPixelDepth";
pub const IE_PROP_COMPONENTS: &CStr = c"OfxImageEffectPropComponents";
pub const IE_PROP_RENDER_WINDOW: &CStr = c"OfxImageEffectPropRenderWindow";
pub const IE_PROP_RENDER_SCALE: &CStr = c"OfxImageEffectPropRenderScale";
pub const IE_PROP_REGION_OF_DEFINITION: &CStr = c"OfxImageEffectPropRegionOfDefinition";
pub const IE_PROP_FRAME_RANGE: &CStr = c"OfxImageEffectPropFrameRange";
pub const IE_PROP_FRAME_RATE: &CStr = c"OfxImageEffectPropFrameRate";
pub const IE_PROP_SEQUENTIAL_RENDER_STATUS: &CStr = c"OfxImageEffectPropSequentialRenderStatus";
pub const IE_PROP_INTERACTIVE_RENDER_STATUS: &CStr = c"OfxImageEffectPropInteractiveRenderStatus";
pub const IE_PROP_PREMULTIPLICATION: &CStr = c"OfxImageEffectPropPreMultiplication";
pub const IE_RENDER_INSTANCE_SAFE: &CStr = c"OfxImageEffectRenderInstanceSafe";
pub const IE_RENDER_FULLY_SAFE: &CStr = c"OfxImageEffectRenderFullySafe";
pub const CLIP_PROP_FRAME_RANGE_PREFIX: &str = "OfxImageClipPropFrameRange_";
pub const CLIP_PROP_DEPTH_PREFIX: &str = "OfxImageClipPropDepth_";
pub const CLIP_PROP_COMPONENTS_PREFIX: &str = "OfxImageClipPropComponents_";
pub const CLIP_PROP_CONNECTED: &CStr = c"OfxImageClipPropConnected";
pub const CLIP_PROP_UNMAPPED_FRAME_RANGE: &CStr = c"OfxImageEffectPropUnmappedFrameRange";

// image properties
pub const IMAGE_PROP_DATA: &CStr = c"OfxImagePropData";
pub const IMAGE_PROP_BOUNDS: &CStr = c"OfxImagePropBounds";
pub const IMAGE_PROP_ROW_BYTES: &CStr = c"OfxImagePropRowBytes";

// parameters
pub const PARAM_TYPE_INTEGER: &CStr = c"OfxParamTypeInteger";
pub const PARAM_TYPE_DOUBLE: &CStr = c"OfxParamTypeDouble";
pub const PARAM_TYPE_BOOLEAN: &CStr = c"OfxParamTypeBoolean";
pub const PARAM_TYPE_CHOICE: &CStr = c"OfxParamTypeChoice";
pub const PARAM_TYPE_STRING: &CStr = c"OfxParamTypeString";
pub const PARAM_TYPE_GROUP: &CStr = c"OfxParamTypeGroup";
pub const PARAM_TYPE_PAGE: &CStr = c"OfxParamTypePage";
pub const PARAM_PROP_DEFAULT: &CStr = c"OfxParamPropDefault";
pub const PARAM_PROP_MIN: &CStr = c"OfxParamPropMin";
pub const PARAM_PROP_MAX: &CStr = c"OfxParamPropMax";
pub const PARAM_PROP_DISPLAY_MIN: &CStr = c"OfxParamPropDisplayMin";
pub const PARAM_PROP_DISPLAY_MAX: &CStr = c"OfxParamPropDisplayMax";
pub const PARAM_PROP_HINT: &CStr = c"OfxParamPropHint";
pub const PARAM_PROP_SCRIPT_NAME: &CStr = c"OfxParamPropScriptName";
pub const PARAM_PROP_PARENT: &CStr = c"OfxParamPropParent";
pub const PARAM_PROP_PAGE_CHILD: &CStr = c"OfxParamPropPageChild";
pub const PARAM_PROP_CHOICE_OPTION: &CStr = c"OfxParamPropChoiceOption";
pub const PARAM_PROP_STRING_MODE: &CStr = c"OfxParamPropStringMode";
pub const PARAM_STRING_IS_DIRECTORY_PATH: &CStr = c"OfxParamStringIsDirectoryPath";
pub const PARAM_PROP_ANIMATES: &CStr = c"OfxParamPropAnimates";
pub const PARAM_PROP_DIGITS: &CStr = c"OfxParamPropDigits";
pub const PARAM_PROP_INCREMENT: &CStr = c"OfxParamPropIncrement";

// messages
pub const MESSAGE_ERROR: &CStr = c"OfxMessageError";
pub const MESSAGE_WARNING: &CStr = c"OfxMessageWarning";
pub const MESSAGE_MESSAGE: &CStr = c"OfxMessageMessage";
