/* core/libtessera.c - the shared library is the core archive linked whole;
 * this file only anchors the target (CMake needs one source). */
#include "internal.h"
