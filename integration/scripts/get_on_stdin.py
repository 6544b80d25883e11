#!/usr/bin/env python3
"""`get_on_stdin.py URL`: one GET of URL per line read on stdin (urllib, a new
connection each), printing the status of each on its own line. Lets a test
start a client first (to know its pid) and decide later when it sends."""
import sys
import urllib.request

for line in sys.stdin:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        r.read()
        print(r.status, flush=True)
