/* The test host's variadic OpenFX functions: they decode the C varargs by parameter type and call Rust. */
#include <stdarg.h>
#include <stdio.h>
#include "svd_ofx.h"

/* Implemented in Rust (src/lib.rs). kind: 0 int, 1 double, 2 string. */
extern int host_param_kind(OfxParamHandle param, int *dims);
extern OfxStatus host_param_get_int(OfxParamHandle param, double time, int index, int *value);
extern OfxStatus host_param_get_double(OfxParamHandle param, double time, int index, double *value);
extern OfxStatus host_param_get_string(OfxParamHandle param, double time, char **value);
extern OfxStatus host_param_set_int(OfxParamHandle param, int index, int value);
extern OfxStatus host_param_set_double(OfxParamHandle param, int index, double value);
extern OfxStatus host_param_set_string(OfxParamHandle param, const char *value);
extern OfxStatus host_message(void *handle, const char *type, const char *id, const char *text, int persistent);

static OfxStatus get_va(OfxParamHandle p, double time, va_list ap) {
  int dims = 1;
  int kind = host_param_kind(p, &dims);
  OfxStatus st = kOfxStatOK;
  for (int i = 0; i < dims && st == kOfxStatOK; i++) {
    switch (kind) {
      case 0: st = host_param_get_int(p, time, i, va_arg(ap, int *)); break;
      case 1: st = host_param_get_double(p, time, i, va_arg(ap, double *)); break;
      case 2: st = host_param_get_string(p, time, va_arg(ap, char **)); break;
      default: return kOfxStatErrBadHandle;
    }
  }
  return st;
}

static OfxStatus set_va(OfxParamHandle p, va_list ap) {
  int dims = 1;
  int kind = host_param_kind(p, &dims);
  OfxStatus st = kOfxStatOK;
  for (int i = 0; i < dims && st == kOfxStatOK; i++) {
    switch (kind) {
      case 0: st = host_param_set_int(p, i, va_arg(ap, int)); break;
      case 1: st = host_param_set_double(p, i, va_arg(ap, double)); break;
      case 2: st = host_param_set_string(p, va_arg(ap, const char *)); break;
      default: return kOfxStatErrBadHandle;
    }
  }
  return st;
}

OfxStatus host_paramGetValue(OfxParamHandle p, ...) {
  va_list ap; va_start(ap, p); OfxStatus st = get_va(p, 0.0, ap); va_end(ap); return st;
}
OfxStatus host_paramGetValueAtTime(OfxParamHandle p, OfxTime t, ...) {
  va_list ap; va_start(ap, t); OfxStatus st = get_va(p, t, ap); va_end(ap); return st;
}
OfxStatus host_paramGetDerivative(OfxParamHandle p, OfxTime t, ...) { (void)p; (void)t; return kOfxStatErrUnsupported; }
OfxStatus host_paramGetIntegral(OfxParamHandle p, OfxTime t1, OfxTime t2, ...) { (void)p; (void)t1; (void)t2; return kOfxStatErrUnsupported; }
OfxStatus host_paramSetValue(OfxParamHandle p, ...) {
  va_list ap; va_start(ap, p); OfxStatus st = set_va(p, ap); va_end(ap); return st;
}
OfxStatus host_paramSetValueAtTime(OfxParamHandle p, OfxTime t, ...) {
  (void)t; va_list ap; va_start(ap, t); OfxStatus st = set_va(p, ap); va_end(ap); return st;
}

static OfxStatus msg_va(void *h, const char *type, const char *id, const char *fmt, va_list ap, int persistent) {
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
  return host_message(h, type, id, buf, persistent);
}
OfxStatus host_message_v(void *h, const char *type, const char *id, const char *fmt, ...) {
  va_list ap; va_start(ap, fmt); OfxStatus st = msg_va(h, type, id, fmt, ap, 0); va_end(ap); return st;
}
OfxStatus host_persistent_message_v(void *h, const char *type, const char *id, const char *fmt, ...) {
  va_list ap; va_start(ap, fmt); OfxStatus st = msg_va(h, type, id, fmt, ap, 1); va_end(ap); return st;
}
