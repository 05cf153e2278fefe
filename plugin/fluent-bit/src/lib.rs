//! Fluent Bit `filter_wasm` adapter: one callRecord record in, one row out.
//!
//! Fluent Bit calls an exported `(tag_ptr, tag_len, time_sec, time_nsec, record_ptr, record_len)
//! -> ptr` once per record, the record as NUL-terminated JSON, and copies the NUL-terminated JSON
//! object the returned pointer names; `""` drops the record. There is no fan-out, so a function
//! gives one table's row: [`callrecords_call_row`] (`TeamsCall_CL`) or [`callrecords_seed_row`]
//! (`TEAMSGraphCallRecords_CL`). Every rule lives in the core; this file only moves bytes.
//!
//! `malloc`/`free` are exported so that WAMR copies records with this module's allocator instead
//! of its small app heap (8 KiB by default), which otherwise hands over a NULL pointer with the
//! real length for a large record.

#![deny(missing_docs)]

use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;

use callrecords::expand;

/// What a filter function answers for a record it cannot use: Fluent Bit drops the record.
const DROP: &[u8] = b"\0";

thread_local! {
    /// The last answer. Fluent Bit copies it before the next call, so one buffer is reused.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The row `row_of` makes of `record` as a NUL-terminated JSON object, or `""` when the record is
/// missing, not UTF-8, or not a callRecord.
fn answer(record: Option<&[u8]>, row_of: fn(&str) -> callrecords::Result<String>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(record?).ok()?;
    let mut row = row_of(text).ok()?.into_bytes();
    // serde_json escapes control characters, so a row never holds a NUL that would cut it short.
    if row.contains(&0) {
        return None;
    }
    row.push(0);
    Some(row)
}

/// Store the answer and return a pointer Fluent Bit may read until the next call.
fn keep(answer: Option<Vec<u8>>) -> *const u8 {
    match answer {
        None => DROP.as_ptr(),
        Some(bytes) => OUT.with(|out| {
            let mut out = out.borrow_mut();
            *out = bytes;
            out.as_ptr()
        }),
    }
}

/// The record bytes Fluent Bit passed, or `None` for a NULL pointer (WAMR's answer to a record
/// larger than its heap) or a negative length.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes.
unsafe fn record<'a>(ptr: *const u8, len: i32) -> Option<&'a [u8]> {
    let len = usize::try_from(len).ok()?;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller (Fluent Bit) passes a copy of the record of exactly `len` bytes.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Bytes in front of every `malloc` block that remember its size for `free`.
const HEADER: usize = 8;

// The exports carry their C names only on wasm32: natively they stay mangled, so a native build
// of this crate never replaces the C library's `malloc`.

/// `TeamsCall_CL`: the call row of a callRecord record, or `""`.
///
/// # Safety
/// Called by Fluent Bit with a record pointer valid for `record_len` bytes (or NULL).
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn callrecords_call_row(
    _tag: *const u8,
    _tag_len: i32,
    _time_sec: i32,
    _time_nsec: i32,
    record_ptr: *const u8,
    record_len: i32,
) -> *const u8 {
    // SAFETY: forwarded from Fluent Bit's call.
    keep(answer(unsafe { record(record_ptr, record_len) }, expand::call_row))
}

/// `TEAMSGraphCallRecords_CL`: the seed-compatible row of a callRecord record, or `""`.
///
/// # Safety
/// Called by Fluent Bit with a record pointer valid for `record_len` bytes (or NULL).
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn callrecords_seed_row(
    _tag: *const u8,
    _tag_len: i32,
    _time_sec: i32,
    _time_nsec: i32,
    record_ptr: *const u8,
    record_len: i32,
) -> *const u8 {
    // SAFETY: forwarded from Fluent Bit's call.
    keep(answer(unsafe { record(record_ptr, record_len) }, expand::seed_row))
}

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// C `malloc` over Rust's allocator, so WAMR can copy large records into this module.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    let Some(layout) = layout(size) else { return std::ptr::null_mut() };
    // SAFETY: the layout is never zero-sized (it holds the header).
    let block = unsafe { alloc(layout) };
    if block.is_null() {
        return block;
    }
    // SAFETY: the block holds at least HEADER bytes, aligned for usize.
    unsafe {
        block.cast::<usize>().write(size);
        block.add(HEADER)
    }
}

/// C `free` of a block from [`malloc`]; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from this module's `malloc` and was not freed yet.
#[cfg_attr(target_arch = "wasm32", unsafe(no_mangle))]
pub unsafe extern "C" fn free(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `malloc` put the size HEADER bytes in front of `ptr`, with this layout.
    unsafe {
        let block = ptr.sub(HEADER);
        let size = block.cast::<usize>().read();
        if let Some(layout) = layout(size) {
            dealloc(block, layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P2P: &str = include_str!("../../../examples/graph/callrecords/peer-to-peer.json");

    fn text(answer: Option<Vec<u8>>) -> Option<String> {
        let mut bytes = answer?;
        assert_eq!(bytes.pop(), Some(0), "NUL-terminated");
        assert!(!bytes.contains(&0), "one NUL, at the end");
        Some(String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn a_call_record_gives_the_core_rows_nul_terminated() {
        let row = text(answer(Some(P2P.as_bytes()), expand::call_row)).unwrap();
        let row: serde_json::Value = serde_json::from_str(&row).unwrap();
        assert_eq!(row["CallId"], "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01");
        assert_eq!(row["CallType"], "peerToPeer");
        let seed = text(answer(Some(P2P.as_bytes()), expand::seed_row)).unwrap();
        let seed: serde_json::Value = serde_json::from_str(&seed).unwrap();
        assert_eq!(seed["id"], "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01");
    }

    #[test]
    fn unusable_records_are_dropped() {
        let bad: [&[u8]; 6] = [b"", b"not json", b"[1,2]", b"{}", b"{\"id\":\"x\",\"sessions\":[1]}", b"\xff\xfe{"];
        for record in bad {
            assert_eq!(answer(Some(record), expand::call_row), None, "{record:?}");
            assert_eq!(answer(Some(record), expand::seed_row), None, "{record:?}");
        }
        assert_eq!(answer(None, expand::call_row), None);
        // SAFETY: a NULL pointer is never read.
        assert_eq!(unsafe { record(std::ptr::null(), 1_000_000) }, None);
        // SAFETY: a negative length is refused before the pointer is read.
        assert_eq!(unsafe { record(b"x".as_ptr(), -1) }, None);
        assert_eq!(keep(None), DROP.as_ptr());
    }

    /// What Fluent Bit does: copy the record NUL-terminated with `malloc`, call, read the C string.
    fn call(
        function: unsafe extern "C" fn(*const u8, i32, i32, i32, *const u8, i32) -> *const u8,
        record: &[u8],
    ) -> String {
        let copy = malloc(record.len() + 1);
        assert!(!copy.is_null());
        // SAFETY: `copy` has room for the record and its NUL; the result is a C string we own.
        unsafe {
            std::ptr::copy_nonoverlapping(record.as_ptr(), copy, record.len());
            copy.add(record.len()).write(0);
            let out = function(c"tag".as_ptr().cast(), 3, 0, 0, copy, record.len() as i32);
            let text = std::ffi::CStr::from_ptr(out.cast()).to_str().unwrap().to_string();
            free(copy);
            text
        }
    }

    #[test]
    fn the_exports_answer_through_c_strings() {
        let row: serde_json::Value = serde_json::from_str(&call(callrecords_call_row, P2P.as_bytes())).unwrap();
        assert_eq!(row["CallId"], "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01");
        let seed: serde_json::Value = serde_json::from_str(&call(callrecords_seed_row, P2P.as_bytes())).unwrap();
        assert_eq!(seed["type"], "peerToPeer");
        assert_eq!(call(callrecords_call_row, b"[1]"), "");
        // SAFETY: a NULL record is never read.
        let out = unsafe { callrecords_seed_row(std::ptr::null(), 0, 0, 0, std::ptr::null(), 4096) };
        assert_eq!(out, DROP.as_ptr());
        // SAFETY: NULL is ignored.
        unsafe { free(std::ptr::null_mut()) };
        assert!(malloc(usize::MAX).is_null(), "a size that overflows the header is refused");
    }

    #[test]
    fn a_nul_inside_a_string_is_escaped_not_cut() {
        let record = P2P.replacen("\"peerToPeer\"", "\"peer\\u0000ToPeer\"", 1);
        let row = text(answer(Some(record.as_bytes()), expand::call_row)).unwrap();
        let row: serde_json::Value = serde_json::from_str(&row).unwrap();
        assert_eq!(row["CallType"], "peer\u{0}ToPeer");
    }
}
