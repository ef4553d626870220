/* stb_image's decoder, compiled into the including test (static: each test is its own
 * program) with the warnings its code would raise under -Werror turned off. A test reads
 * the PNGs deconv writes back with it, as an outside reader would. Include once. */
#ifndef DECONV_TU_STB_IMAGE_H
#define DECONV_TU_STB_IMAGE_H

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#ifdef TU_STB_IMAGE_WRITE
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#endif
