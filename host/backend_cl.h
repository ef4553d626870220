/* Forwarding header: the OpenCL backend's shared internals live in backend/cl/backend_cl.h.
 * Kept for the sources that still include it by its old name. */
#include "backend/cl/backend_cl.h"
