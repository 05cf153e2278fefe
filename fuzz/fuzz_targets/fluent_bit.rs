//! The Fluent Bit filter's C ABI (`callrecords_call_row`, `callrecords_seed_row`, `malloc`,
//! `free` of `plugin/fluent-bit`), called in-process as Fluent Bit's `filter_wasm` calls them: the
//! record copied NUL-terminated into the module's `malloc`, the answer read as a C string. Seeds:
//! `examples/graph/callrecords/`.
//!
//! Invariants: the answer is never NULL; it is the core's row exactly when the record is UTF-8 and
//! the core makes a row of it, else `""` (drop); a row is one JSON object; a NULL record or a
//! negative length is dropped without being read.

#![no_main]

use std::ffi::CStr;

use callrecords::expand;
use callrecords_fluent_bit::{callrecords_call_row, callrecords_seed_row, free, malloc};
use libfuzzer_sys::fuzz_target;

type Filter = unsafe extern "C" fn(*const u8, i32, i32, i32, *const u8, i32) -> *const u8;
type Core = fn(&str) -> callrecords::Result<String>;

const TAG: &CStr = c"teams.callrecords";

fuzz_target!(|data: &[u8]| {
    let Ok(len) = i32::try_from(data.len()) else { return };
    let copy = malloc(data.len() + 1);
    assert!(!copy.is_null(), "malloc of {} bytes", data.len() + 1);
    // SAFETY: `copy` has room for the record and its NUL.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), copy, data.len());
        copy.add(data.len()).write(0);
    }
    let text = std::str::from_utf8(data).ok();
    let filters: [(Filter, Core); 2] =
        [(callrecords_call_row, expand::call_row), (callrecords_seed_row, expand::seed_row)];
    for (filter, core) in filters {
        // SAFETY: the record pointer is valid for `len` bytes; the answer is read before the next call.
        let got = unsafe {
            let out = filter(TAG.as_ptr().cast(), TAG.count_bytes() as i32, 1_795_824_000, 0, copy, len);
            assert!(!out.is_null(), "the answer is never NULL");
            CStr::from_ptr(out.cast()).to_bytes().to_vec()
        };
        match text.and_then(|t| core(t).ok()) {
            Some(row) => {
                assert_eq!(got, row.as_bytes(), "the filter answers the core's row");
                let v: serde_json::Value = serde_json::from_slice(&got).expect("a row is JSON");
                assert!(v.is_object(), "a row is an object");
            }
            None => assert!(got.is_empty(), "an unusable record is dropped"),
        }
    }
    // SAFETY: `copy` came from this module's malloc and is freed once.
    unsafe { free(copy) };

    // SAFETY: a NULL record and a negative length must be refused before any read.
    unsafe {
        let out = callrecords_call_row(TAG.as_ptr().cast(), 0, 0, 0, std::ptr::null(), len);
        assert_eq!(CStr::from_ptr(out.cast()).to_bytes(), b"", "a NULL record is dropped");
        let out = callrecords_seed_row(TAG.as_ptr().cast(), 0, 0, 0, data.as_ptr(), -1 - len);
        assert_eq!(CStr::from_ptr(out.cast()).to_bytes(), b"", "a negative length is dropped");
    }
});
