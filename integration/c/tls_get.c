#define _GNU_SOURCE
/* A small HTTPS client linked with Debian's static libssl.a, for the
 * stripped-TLS tests (integration/tests/stripped_tls.rs). The library does
 * its own socket I/O (SSL_set_fd: "BIO native").
 *
 *   tls_get PORT PATH...
 *
 * Opens ONE TLS connection to 127.0.0.1:PORT (the certificate is not
 * checked: the tests use a fresh self-signed one), sends one keep-alive
 * GET per PATH in order, and prints one line per response:
 * "STATUS BODY_BYTES LOCAL_PORT". Bodies must carry Content-Length. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "tls_get: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Reads until the end of the response head; returns its length in buf. */
static size_t read_head(SSL *ssl, char *buf, size_t cap, size_t *have) {
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end) return (size_t)(end - buf) + 4;
        if (*have == cap) die("response head too long");
        int n = SSL_read(ssl, buf + *have, (int)(cap - *have));
        if (n <= 0) die("SSL_read (head)");
        *have += (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) die("usage: tls_get PORT PATH...");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    getsockname(fd, (struct sockaddr *)&local, &len);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die("SSL_CTX_new");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* HTTP/1.1 only: nginx would otherwise offer HTTP/2 by ALPN. */
    static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) die("SSL_connect");

    static char buf[1 << 16];
    size_t have = 0;
    for (int i = 2; i < argc; i++) {
        char req[512];
        int rn = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n", argv[i], argv[1]);
        if (rn <= 0 || (size_t)rn >= sizeof req) die("path too long");
        if (SSL_write(ssl, req, rn) != rn) die("SSL_write");
        size_t head = read_head(ssl, buf, sizeof buf, &have);
        int status = 0;
        if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) die("status line");
        long body = -1;
        for (char *line = buf; line < buf + head; ) {
            char *eol = memmem(line, (size_t)(buf + head - line), "\r\n", 2);
            if (!eol) break;
            if (strncasecmp(line, "content-length:", 15) == 0) body = atol(line + 15);
            line = eol + 2;
        }
        if (body < 0) die("no Content-Length");
        size_t got = have - head; /* body bytes already read */
        while ((long)got < body) {
            int n = SSL_read(ssl, buf + head, (int)(sizeof buf - head));
            if (n <= 0) die("SSL_read (body)");
            got += (size_t)n;
        }
        if ((long)got > body) die("pipelined bytes after the body");
        have = 0;
        printf("%d %ld %u\n", status, body, (unsigned)ntohs(local.sin_port));
        fflush(stdout);
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}
