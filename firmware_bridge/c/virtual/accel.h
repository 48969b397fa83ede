/* The virtual device's "peripherals": the CPU instructions that stand in for the CRC unit and
 * the hash engine a board port would hand to the library (sha256_x86.c, crc32_x86.c). Each
 * install function checks its code against the portable code first and keeps the portable
 * code when they disagree or the CPU lacks the instructions; it returns what it installed. */
#ifndef ACCEL_H
#define ACCEL_H

#include "bridge_codec.h"
#include "bridge_sha256.h"

const char *sha256_accel_install(void);
const char *crc32_accel_install(void);

#endif /* ACCEL_H */
