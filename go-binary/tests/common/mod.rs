//! Builds the Go test programs once per test binary with the Go 1.19
//! toolchain, hermetically (no module downloads, no cgo, caches under
//! cargo's target tmp dir).

#![allow(dead_code, reason = "shared by several test crates, each using a part")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const GO: &str = "/usr/lib/go-1.19/bin/go";

const TLS_MAIN: &str = r#"package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
)

func main() {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	if len(os.Args) > 1 {
		resp, err := c.Get(os.Args[1])
		fmt.Println(resp, err)
	}
}
"#;

const PLAIN_MAIN: &str = r#"package main

import "fmt"

func main() { fmt.Println("hello") }
"#;

pub struct Fixtures {
    /// `go build`
    pub default: PathBuf,
    /// `go build -ldflags='-s -w'`
    pub stripped: PathBuf,
    /// `go build -trimpath`
    pub trimpath: PathBuf,
    /// `go build -buildmode=pie`
    pub pie: PathBuf,
    /// fmt.Println only: no crypto/tls
    pub no_net: PathBuf,
    /// The TLS program cross-built for arm64 (`GOARCH=arm64`)
    pub arm64: PathBuf,
}

/// The Go compiler, or a loud failure naming the package to install.
pub fn go() -> &'static Path {
    let go = Path::new(GO);
    assert!(
        go.exists(),
        "{GO} not found: these tests build Go programs with Go 1.19. Install it with \
         `apt-get install golang-1.19-go` (scripts/setup.sh does)"
    );
    go
}

fn build(go: &Path, root: &Path, src: &Path, out: &str, args: &[&str]) -> PathBuf {
    build_for(go, root, src, out, args, "amd64")
}

fn build_for(go: &Path, root: &Path, src: &Path, out: &str, args: &[&str], arch: &str) -> PathBuf {
    let output = root.join(out);
    let status = Command::new(go)
        .env("GOARCH", arch)
        .arg("build")
        .args(args)
        .arg("-o")
        .arg(&output)
        .arg(".")
        .current_dir(src)
        .env("GOCACHE", root.join("gocache"))
        .env("GOPATH", root.join("gopath"))
        .env("GOENV", "off")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "on")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", go.display()));
    assert!(status.success(), "go build {args:?} failed: {status}");
    output
}

fn write_program(dir: &Path, main: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("go.mod"), "module x\n\ngo 1.19\n").unwrap();
    std::fs::write(dir.join("main.go"), main).unwrap();
}

pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let go = go();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-binary-fixtures");
        let tls_src = root.join("tls-src");
        let plain_src = root.join("plain-src");
        write_program(&tls_src, TLS_MAIN);
        write_program(&plain_src, PLAIN_MAIN);
        Fixtures {
            default: build(go, &root, &tls_src, "tls-default", &[]),
            stripped: build(go, &root, &tls_src, "tls-stripped", &["-ldflags=-s -w"]),
            trimpath: build(go, &root, &tls_src, "tls-trimpath", &["-trimpath"]),
            pie: build(go, &root, &tls_src, "tls-pie", &["-buildmode=pie"]),
            no_net: build(go, &root, &plain_src, "plain", &[]),
            arm64: build_for(go, &root, &tls_src, "tls-arm64", &[], "arm64"),
        }
    })
}
