/* lz4_tool.c -- a stdin-to-stdout filter around the LZ4 library (the block
 * and frame formats, LZ4 and LZ4-HC compressors, xxHash; fetched by build.py).
 *
 *   lz4_tool frame LEVEL   compress to an LZ4 frame (levels >= 3 use LZ4-HC),
 *                          with block and content checksums
 *   lz4_tool unframe       decompress an LZ4 frame
 *   lz4_tool block LEVEL   one raw LZ4 block (LZ4_compress_HC at LEVEL,
 *                          LZ4_compress_fast with acceleration -LEVEL below 1)
 *   lz4_tool xxh           print the XXH32 of the input
 *
 * Built for WASI with -msimd128 and natively with gcc; the outputs must be
 * identical byte for byte.
 */
#include <string.h>

#define TOOL "lz4_tool"
#include "filter.h"

#include "lz4.h"
#include "lz4frame.h"
#include "lz4hc.h"
#include "xxhash.h"

static void frame(int level, const unsigned char *in, size_t n)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.compressionLevel = level;
    prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs.frameInfo.contentSize = n;
    size_t bound = LZ4F_compressFrameBound(n, &prefs);
    unsigned char *out = malloc(bound);
    if (!out) die("out of memory");
    size_t size = LZ4F_compressFrame(out, bound, in, n, &prefs);
    if (LZ4F_isError(size)) die(LZ4F_getErrorName(size));
    write_all(out, size);
    free(out);
}

static void unframe(const unsigned char *in, size_t n)
{
    LZ4F_dctx *dctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION))) die("out of memory");
    unsigned char chunk[1 << 16];
    size_t pos = 0, hint = 1;
    while (pos < n && hint != 0) {
        size_t src = n - pos, dst = sizeof chunk;
        hint = LZ4F_decompress(dctx, chunk, &dst, in + pos, &src, NULL);
        if (LZ4F_isError(hint)) die(LZ4F_getErrorName(hint));
        write_all(chunk, dst);
        pos += src;
    }
    if (hint != 0) die("truncated frame");
    LZ4F_freeDecompressionContext(dctx);
}

static void block(int level, const unsigned char *in, size_t n)
{
    int bound = LZ4_compressBound((int)n);
    char *out = malloc((size_t)bound);
    if (!out || bound <= 0) die("input too large");
    int size = level >= 1 ? LZ4_compress_HC((const char *)in, out, (int)n, bound, level)
                          : LZ4_compress_fast((const char *)in, out, (int)n, bound, 1 - level);
    if (size <= 0) die("compression failed");
    write_all(out, (size_t)size);
    free(out);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    size_t n;
    unsigned char *in;
    if (strcmp(mode, "frame") == 0 && argc == 3) {
        in = read_all(&n);
        frame(atoi(argv[2]), in, n);
    } else if (strcmp(mode, "unframe") == 0 && argc == 2) {
        in = read_all(&n);
        unframe(in, n);
    } else if (strcmp(mode, "block") == 0 && argc == 3) {
        in = read_all(&n);
        block(atoi(argv[2]), in, n);
    } else if (strcmp(mode, "xxh") == 0 && argc == 2) {
        in = read_all(&n);
        printf("xxh32 %08x\n", XXH32(in, n, 0));
    } else {
        die("usage: lz4_tool frame LEVEL | unframe | block LEVEL | xxh  (stdin to stdout)");
    }
    return 0;
}
