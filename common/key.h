/* key.h - the cluster key: loaded from a file only its owner can read, and
 * used for HMAC-SHA256 of every message (libsodium).
 *
 * The file holds at least 32 bytes of random data (e.g. `head -c 32
 * /dev/urandom`); the HMAC key is SHA-256 of its whole contents, so any
 * length from 32 bytes to 4 KiB works and text keys are fine too.
 * A keyring holds up to two keys for rotation: messages are signed with the
 * first and accepted under either.
 */
#ifndef FULCRUM_KEY_H
#define FULCRUM_KEY_H

#include <stddef.h>
#include <stdint.h>

#define KEY_FILE_MIN 32
#define KEY_FILE_MAX 4096
#define KEY_RING_MAX 2

struct key_ring {
    unsigned n;
    uint8_t k[KEY_RING_MAX][32];
};

/* Reads a secret file into buf (size max): a regular file that neither
 * group nor others may touch, of min to max bytes. `what` names it in the
 * errors ("key file", "admin token file"). On success *len is the number
 * of bytes read; the caller wipes buf (sodium_memzero), which this does
 * itself on failure. Returns 0 or -errno with err filled. */
int secret_file_read(const char *what, const char *path, uint8_t *buf, size_t min, size_t max,
                     size_t *len, char *err, size_t errlen);

/* Adds the key in `path` to the ring. Refuses (with err filled) a missing
 * file, one that is not a regular file, shorter than KEY_FILE_MIN or longer
 * than KEY_FILE_MAX, readable or writable by group or others, or a full ring.
 * Returns 0 or -errno. */
int key_ring_load(struct key_ring *kr, const char *path, char *err, size_t errlen);

/* Wipes the key material. */
void key_ring_done(struct key_ring *kr);

#endif
