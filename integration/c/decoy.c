/* A stripped program with no TLS library that carries what a naive locator
 * would take for one: OpenSSL's and BoringSSL's source-file names, function
 * names, and calls shaped like their error macros. The agent must hook
 * nothing in it, and count it (integration/tests/stripped_tls.rs).
 *
 *   decoy N   prints N lines and exits 0 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void note(const char *file, int line, const char *func) {
    printf("%s:%d %s\n", file, line, func);
}
__attribute__((noinline)) static void raise_reason(int lib, int reason, const char *detail) {
    printf("lib %d reason %d %s\n", lib, reason, detail ? detail : "-");
}
__attribute__((noinline)) static int fake_write(int n) {
    if (n < 0) { note("../ssl/ssl_lib.c", 2100, "SSL_write"); raise_reason(20, 271, NULL); return -1; }
    return n;
}
__attribute__((noinline)) static int fake_read(int n) {
    if (n < 0) { note("third_party/boringssl/src/ssl/ssl_lib.cc", 1000, "SSL_read"); raise_reason(16, 226, NULL); return -1; }
    return n;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    for (int i = 0; i < n; i++) printf("%d %d\n", fake_write(i - 1 + (argc > 5)), fake_read(i + (argc > 6)));
    return 0;
}
