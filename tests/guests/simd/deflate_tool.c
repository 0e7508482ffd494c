/* deflate_tool.c -- a stdin-to-stdout filter around libdeflate (the
 * DEFLATE, zlib and gzip compressor and decompressor, fetched by build.py).
 *
 *   deflate_tool zlib LEVEL    compress to the zlib format (levels 0..12)
 *   deflate_tool gzip LEVEL    compress to the gzip format
 *   deflate_tool unzlib        decompress zlib
 *   deflate_tool gunzip        decompress gzip
 *   deflate_tool sums          print the CRC-32 and Adler-32 of the input
 *
 * Built for WASI with -msimd128 (clang vectorizes parts of the library) and
 * natively with gcc; the outputs must be identical byte for byte.
 */
#include <string.h>

#define TOOL "deflate_tool"
#include "filter.h"

#include "libdeflate.h"

static void compress(int gzip, int level, const unsigned char *in, size_t n)
{
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c) die("bad compression level (0..12)");
    size_t bound = gzip ? libdeflate_gzip_compress_bound(c, n) : libdeflate_zlib_compress_bound(c, n);
    unsigned char *out = malloc(bound);
    if (!out) die("out of memory");
    size_t size = gzip ? libdeflate_gzip_compress(c, in, n, out, bound) : libdeflate_zlib_compress(c, in, n, out, bound);
    if (size == 0) die("compression failed");
    write_all(out, size);
    free(out);
    libdeflate_free_compressor(c);
}

/* The output size is not known up front: retry with twice the room. */
static void decompress(int gzip, const unsigned char *in, size_t n)
{
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    size_t cap = 4 * n + 4096, size = 0;
    unsigned char *out = NULL;
    enum libdeflate_result r = LIBDEFLATE_INSUFFICIENT_SPACE;
    while (d && r == LIBDEFLATE_INSUFFICIENT_SPACE) {
        free(out);
        out = malloc(cap);
        if (!out) die("out of memory");
        r = gzip ? libdeflate_gzip_decompress(d, in, n, out, cap, &size)
                 : libdeflate_zlib_decompress(d, in, n, out, cap, &size);
        cap *= 2;
    }
    if (!d || r != LIBDEFLATE_SUCCESS) die("corrupt input");
    write_all(out, size);
    free(out);
    libdeflate_free_decompressor(d);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    size_t n;
    if ((strcmp(mode, "zlib") == 0 || strcmp(mode, "gzip") == 0) && argc == 3) {
        unsigned char *in = read_all(&n);
        compress(mode[0] == 'g', atoi(argv[2]), in, n);
    } else if ((strcmp(mode, "unzlib") == 0 || strcmp(mode, "gunzip") == 0) && argc == 2) {
        unsigned char *in = read_all(&n);
        decompress(mode[0] == 'g', in, n);
    } else if (strcmp(mode, "sums") == 0 && argc == 2) {
        unsigned char *in = read_all(&n);
        printf("crc32 %08x adler32 %08x\n", libdeflate_crc32(0, in, n), libdeflate_adler32(1, in, n));
    } else {
        die("usage: deflate_tool zlib|gzip LEVEL | unzlib | gunzip | sums  (stdin to stdout)");
    }
    return 0;
}
