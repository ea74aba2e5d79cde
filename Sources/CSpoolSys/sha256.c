// SHA-256 (FIPS 180-4) whose state can be saved and restored: an S3 multipart
// upload's parts cannot be read back, so a resume continues the hash from the
// state saved when its last part was stored. BoringSSL's (behind swift-crypto)
// hides its state. x86-64 with the SHA extensions runs the SHA-NI rounds; other
// machines the portable ones.
#include "include/CSpoolSys.h"
#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void blocks_portable(uint32_t h[8], const uint8_t *p, size_t blocks) {
    while (blocks--) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++)
            w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
        p += 64;
    }
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

// Four rounds, then the schedule of the message words 16 rounds on (Intel's
// "SHA extensions" white paper; msg[i % 4] holds W[4i .. 4i+3]).
#define QUAD(i)                                                                                      \
    do {                                                                                             \
        __m128i m = _mm_add_epi32(msg[(i) % 4], _mm_loadu_si128((const __m128i *)&K[4 * (i)]));     \
        state1 = _mm_sha256rnds2_epu32(state1, state0, m);                                           \
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(m, 0x0E));                 \
        if ((i) < 12)                                                                                \
            msg[(i) % 4] = _mm_sha256msg2_epu32(                                                     \
                _mm_add_epi32(_mm_sha256msg1_epu32(msg[(i) % 4], msg[((i) + 1) % 4]),               \
                              _mm_alignr_epi8(msg[((i) + 3) % 4], msg[((i) + 2) % 4], 4)),          \
                msg[((i) + 3) % 4]);                                                                 \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_sha_ni(uint32_t h[8], const uint8_t *p, size_t blocks) {
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);  // CDAB
    __m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);  // EFGH
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  // ABEF
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);  // CDGH
    while (blocks--) {
        __m128i abef = state0, cdgh = state1, msg[4];
        for (int i = 0; i < 4; i++) msg[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);
        // Ordered so that each schedule step reads words not yet overwritten.
        QUAD(0); QUAD(1); QUAD(2); QUAD(3); QUAD(4); QUAD(5); QUAD(6); QUAD(7);
        QUAD(8); QUAD(9); QUAD(10); QUAD(11); QUAD(12); QUAD(13); QUAD(14); QUAD(15);
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        p += 64;
    }
    tmp = _mm_shuffle_epi32(state0, 0x1B);  // FEBA
    state1 = _mm_shuffle_epi32(state1, 0xB1);  // DCHG
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(tmp, state1, 0xF0));  // DCBA
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(state1, tmp, 8));  // HGFE
}

static int has_sha_ni(void) {
    static int known = -1;
    if (known < 0) {
        unsigned a, b, c, d;
        int sha = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
        int sse41 = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19)) && (c & (1u << 9));
        known = sha && sse41;
    }
    return known;
}
#endif

static void blocks(uint32_t h[8], const uint8_t *p, size_t n, int portable) {
#if defined(__x86_64__)
    if (!portable && has_sha_ni()) { blocks_sha_ni(h, p, n); return; }
#endif
    (void)portable;
    blocks_portable(h, p, n);
}

void spool_sha256_init(spool_sha256 *s) {
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memset(s, 0, sizeof *s);
    memcpy(s->h, iv, sizeof iv);
}

void spool_sha256_update(spool_sha256 *s, const void *data, size_t count) {
    const uint8_t *p = data;
    s->length += count;
    if (s->buffered) {
        size_t take = 64 - s->buffered < count ? 64 - s->buffered : count;
        memcpy(s->buffer + s->buffered, p, take);
        s->buffered += (uint32_t)take; p += take; count -= take;
        if (s->buffered < 64) return;
        blocks(s->h, s->buffer, 1, s->portable);
        s->buffered = 0;
    }
    if (count >= 64) {
        blocks(s->h, p, count / 64, s->portable);
        p += count & ~(size_t)63; count &= 63;
    }
    memcpy(s->buffer, p, count);
    s->buffered = (uint32_t)count;
}

void spool_sha256_final(const spool_sha256 *state, uint8_t out[32]) {
    spool_sha256 s = *state;
    uint64_t bits = s.length * 8;
    uint8_t pad[72] = {0x80};
    size_t padding = (s.buffered < 56 ? 56 : 120) - s.buffered;
    for (int i = 0; i < 8; i++) pad[padding + i] = (uint8_t)(bits >> (56 - 8 * i));
    spool_sha256_update(&s, pad, padding + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s.h[i] >> 24); out[4 * i + 1] = (uint8_t)(s.h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s.h[i] >> 8); out[4 * i + 3] = (uint8_t)s.h[i];
    }
}
