//! HPACK decoder against every example of RFC 7541 Appendix C (C.2–C.6), plus
//! Huffman round trips and error cases.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod http2_support;
use http2_support::*;

use protocol_parsers::http2::hpack::{huffman, Decoder, DecoderError};

type Fields = Vec<(String, String)>;

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, DecoderError> {
    let mut out = Vec::new();
    let stats = d.decode(block, |n, v| {
        out.push((
            String::from_utf8(n.to_vec()).unwrap(),
            String::from_utf8(v.to_vec()).unwrap(),
        ))
    })?;
    assert_eq!(stats.unknown_refs, 0);
    assert_eq!(stats.fields as usize, out.len());
    Ok(out)
}

fn table(d: &Decoder) -> (Fields, usize) {
    let t = d.table();
    let entries = t
        .iter()
        .map(|e| {
            let (n, v) = e.unwrap();
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    (entries, t.size())
}

fn f(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// One step of an Appendix C sequence: block, expected fields, expected table, size.
struct Step<'a> {
    hex: &'a str,
    fields: &'a [(&'a str, &'a str)],
    table: &'a [(&'a str, &'a str)],
    size: usize,
}

fn check_sequence(mut d: Decoder, steps: &[Step]) {
    for (i, s) in steps.iter().enumerate() {
        let got = decode(&mut d, &hex(s.hex)).unwrap_or_else(|e| panic!("step {i}: {e:?}"));
        assert_eq!(got, f(s.fields), "fields of step {i}");
        assert_eq!(table(&d), (f(s.table), s.size), "table after step {i}");
    }
}

#[test]
fn c2_1_literal_with_indexing() {
    check_sequence(
        Decoder::new(),
        &[Step {
            hex: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            fields: &[("custom-key", "custom-header")],
            table: &[("custom-key", "custom-header")],
            size: 55,
        }],
    );
}

#[test]
fn c2_2_literal_without_indexing() {
    check_sequence(
        Decoder::new(),
        &[Step {
            hex: "040c 2f73 616d 706c 652f 7061 7468",
            fields: &[(":path", "/sample/path")],
            table: &[],
            size: 0,
        }],
    );
}

#[test]
fn c2_3_literal_never_indexed() {
    check_sequence(
        Decoder::new(),
        &[Step {
            hex: "1008 7061 7373 776f 7264 0673 6563 7265 74",
            fields: &[("password", "secret")],
            table: &[],
            size: 0,
        }],
    );
}

#[test]
fn c2_4_indexed() {
    check_sequence(
        Decoder::new(),
        &[Step {
            hex: "82",
            fields: &[(":method", "GET")],
            table: &[],
            size: 0,
        }],
    );
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQ_T2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_T3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    check_sequence(
        Decoder::new(),
        &[
            Step {
                hex: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                fields: REQ1,
                table: REQ_T1,
                size: 57,
            },
            Step {
                hex: "8286 84be 5808 6e6f 2d63 6163 6865",
                fields: REQ2,
                table: REQ_T2,
                size: 110,
            },
            Step {
                hex: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                fields: REQ3,
                table: REQ_T3,
                size: 164,
            },
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    check_sequence(
        Decoder::new(),
        &[
            Step {
                hex: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                fields: REQ1,
                table: REQ_T1,
                size: 57,
            },
            Step {
                hex: "8286 84be 5886 a8eb 1064 9cbf",
                fields: REQ2,
                table: REQ_T2,
                size: 110,
            },
            Step {
                hex: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                fields: REQ3,
                table: REQ_T3,
                size: 164,
            },
        ],
    );
}

const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP_T1: &[(&str, &str)] = &[
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
    (":status", "302"),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP_T2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
];
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RESP_T3: &[(&str, &str)] = &[
    ("set-cookie", COOKIE),
    ("content-encoding", "gzip"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
];

#[test]
fn c5_responses_without_huffman() {
    check_sequence(
        Decoder::with_max_size(256),
        &[
            Step {
                hex:
                    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                      2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861
                      6d70 6c65 2e63 6f6d",
                fields: RESP1,
                table: RESP_T1,
                size: 222,
            },
            Step {
                hex: "4803 3330 37c1 c0bf",
                fields: RESP2,
                table: RESP_T2,
                size: 222,
            },
            Step {
                hex: "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220
                      474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157
                      454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076
                      6572 7369 6f6e 3d31",
                fields: RESP3,
                table: RESP_T3,
                size: 215,
            },
        ],
    );
}

#[test]
fn c6_responses_with_huffman() {
    check_sequence(
        Decoder::with_max_size(256),
        &[
            Step {
                hex: "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0
                      82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                fields: RESP1,
                table: RESP_T1,
                size: 222,
            },
            Step {
                hex: "4883 640e ffc1 c0bf",
                fields: RESP2,
                table: RESP_T2,
                size: 222,
            },
            Step {
                hex: "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b
                      d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27
                      0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                fields: RESP3,
                table: RESP_T3,
                size: 215,
            },
        ],
    );
}

#[test]
fn huffman_known_strings_round_trip() {
    // Encodings from RFC 7541 C.4 / C.6.
    let known: &[(&str, &str)] = &[
        ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
        ("no-cache", "a8eb 1064 9cbf"),
        ("custom-key", "25a8 49e9 5ba9 7d7f"),
        ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        ("302", "6402"),
        ("private", "aec3 771a 4b"),
        (
            "https://www.example.com",
            "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
        ),
        ("gzip", "9bd9 ab"),
    ];
    for (text, enc) in known {
        let mut out = Vec::new();
        huffman::encode(text.as_bytes(), &mut out);
        assert_eq!(out, hex(enc), "encode {text}");
        let mut dec = Vec::new();
        huffman::decode(&out, &mut dec).unwrap();
        assert_eq!(dec, text.as_bytes());
    }
    let mut dec = Vec::new();
    huffman::decode(&[], &mut dec).unwrap();
    assert!(dec.is_empty());
}

#[test]
fn size_update_beyond_bound_is_an_error() {
    let mut d = Decoder::new();
    // A table-size "bomb": 4 GiB-ish size update with the default 4096 bound.
    let bomb = block(&[Rep::SizeUpdate(0xffff_fff0), Rep::Indexed(2)]);
    assert_eq!(decode(&mut d, &bomb), Err(DecoderError::SizeUpdateTooLarge));
    let mut d = Decoder::new();
    assert_eq!(
        decode(&mut d, &block(&[Rep::SizeUpdate(4097)])),
        Err(DecoderError::SizeUpdateTooLarge)
    );
    let mut d = Decoder::new();
    d.set_bound(8192);
    assert!(decode(&mut d, &block(&[Rep::SizeUpdate(8192)])).is_ok());
    assert_eq!(d.table().max_size(), 8192);
}

#[test]
fn size_update_after_a_field_is_an_error() {
    let mut d = Decoder::new();
    let b = block(&[Rep::Indexed(2), Rep::SizeUpdate(0)]);
    assert_eq!(decode(&mut d, &b), Err(DecoderError::SizeUpdateNotAtStart));
}

#[test]
fn size_update_evicts() {
    let mut d = Decoder::new();
    decode(
        &mut d,
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
    )
    .unwrap();
    assert_eq!(d.table().len(), 1);
    decode(&mut d, &block(&[Rep::SizeUpdate(0), Rep::SizeUpdate(4096)])).unwrap();
    assert_eq!(d.table().len(), 0);
    assert_eq!(decode(&mut d, &[0xbe]), Err(DecoderError::InvalidIndex));
}

#[test]
fn invalid_inputs() {
    let cases: &[(&[u8], DecoderError)] = &[
        (&[0x80], DecoderError::InvalidIndex),
        (&[0xbe], DecoderError::InvalidIndex),
        (&[0x04, 0x05, b'a'], DecoderError::NeedMore),
        (&[0x40], DecoderError::NeedMore),
        (
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            DecoderError::IntegerOverflow,
        ),
        (&[0x04, 0x81, 0x00], DecoderError::InvalidHuffman),
    ];
    for (b, e) in cases {
        assert_eq!(decode(&mut Decoder::new(), b), Err(*e), "{b:02x?}");
    }
}

#[test]
fn unknown_table_resolves_only_what_it_saw() {
    let mut d = Decoder::new_unknown();
    let mut fields = Vec::new();
    // 0xbe (dynamic 62) is unknown; :method GET is static.
    let stats = d
        .decode(&[0xbe, 0x82], |n, v| fields.push((n.to_vec(), v.to_vec())))
        .unwrap();
    assert_eq!(stats.unknown_refs, 1);
    assert_eq!(fields, vec![(b":method".to_vec(), b"GET".to_vec())]);
    // Insert one entry; it becomes 62, the old unknowns shift to 63+.
    let b = block(&[Rep::Inc(Name::Idx(1), "a.example")]);
    d.decode(&b, |_, _| {}).unwrap();
    fields.clear();
    let stats = d
        .decode(&[0xbe, 0xbf], |n, v| fields.push((n.to_vec(), v.to_vec())))
        .unwrap();
    assert_eq!(stats.unknown_refs, 1);
    assert_eq!(
        fields,
        vec![(b":authority".to_vec(), b"a.example".to_vec())]
    );
    // A literal whose name is an unknown index, with indexing: a placeholder.
    let b = block(&[Rep::Inc(Name::Idx(63), "v")]);
    let stats = d.decode(&b, |_, _| panic!("name unknown")).unwrap();
    assert_eq!(stats.unknown_refs, 1);
    let stats = d
        .decode(&[0xbe, 0xbf], |n, v| fields.push((n.to_vec(), v.to_vec())))
        .unwrap();
    assert_eq!(
        stats.unknown_refs, 1,
        "62 is the placeholder, 63 is a.example"
    );
}
