/* The virtual device's SHA-256 accelerator (see sha256_x86.c). */
#ifndef SHA256_ACCEL_H
#define SHA256_ACCEL_H

#include "bridge_sha256.h"

/* Installs the fastest block function that agrees with the portable code; returns its name. */
const char *sha256_accel_install(void);

#endif /* SHA256_ACCEL_H */
