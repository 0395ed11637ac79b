//! The C boundary between Envoy and the module.
//!
//! This is the one file of the crate where unsafe code is allowed (the crate
//! denies it everywhere else, see Cargo.toml). It holds:
//!
//! * the module's own declarations of the part of Envoy's dynamic-module ABI
//!   it uses, written for Envoy 1.40.0, whose ABI version is `v0.2.0`;
//! * the hooks Envoy calls (`envoy_dynamic_module_on_*`), each of which
//!   catches any panic, so that a bug in the module answers one request with
//!   the documented 500 and never unwinds into Envoy;
//! * the check at load: Envoy's callbacks are looked up by name in the
//!   running Envoy (`dlsym`) rather than linked, so a module loaded by an
//!   Envoy that lacks one of them refuses to load, naming what is missing,
//!   instead of failing at the first request that calls it.
//!
//! The ABI belongs to one Envoy version. When the Envoy pin moves, the
//! declarations here are checked against the new version's ABI and
//! [`ABI_VERSION`] moves with it.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use crate::filter::{self, Config, Filter, Headers};

/// The ABI version this module was written against (Envoy 1.40.0).
pub const ABI_VERSION: &CStr = c"v0.2.0";

/// Bytes owned by Envoy (not NUL-terminated).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    length: usize,
}

impl EnvoyBuffer {
    /// The bytes, valid for the duration of the hook that received them.
    ///
    /// # Safety
    /// `ptr` must point at `length` readable bytes (or be null).
    unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            &[]
        } else {
            // SAFETY: Envoy hands a pointer to `length` bytes it owns for
            // the duration of the call (the caller's contract).
            unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }
        }
    }
}

/// Bytes owned by the module, lent to Envoy for one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ModuleBuffer {
    ptr: *const c_char,
    length: usize,
}

impl ModuleBuffer {
    fn of(b: &[u8]) -> ModuleBuffer {
        ModuleBuffer { ptr: b.as_ptr().cast(), length: b.len() }
    }
}

/// A header lent to Envoy (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ModuleHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// Envoy's handle of a filter configuration.
type ConfigEnvoyPtr = *mut c_void;
/// The module's filter configuration (an `Arc<Config>` in raw form).
type ConfigModulePtr = *const c_void;
/// Envoy's handle of one request's filter, valid until the filter is destroyed.
type FilterEnvoyPtr = *mut c_void;
/// The module's filter for one request (a leaked `Box<Filter>`).
type FilterModulePtr = *const c_void;

// `envoy_dynamic_module_type_on_http_filter_*_status`: C enums (4 bytes).
const HEADERS_CONTINUE: u32 = 0;
const HEADERS_STOP_ITERATION: u32 = 1;
const BODY_CONTINUE: u32 = 0;
const TRAILERS_CONTINUE: u32 = 0;
// `envoy_dynamic_module_type_log_level`.
const LOG_ERROR: u32 = 4;

/// `envoy_dynamic_module_callback_http_send_response`.
type SendResponse = unsafe extern "C" fn(
    filter: FilterEnvoyPtr,
    status: u32,
    headers: *mut ModuleHeader,
    headers_size: usize,
    body: ModuleBuffer,
    details: ModuleBuffer,
);
/// `envoy_dynamic_module_callback_log`.
type Log = unsafe extern "C" fn(level: u32, message: ModuleBuffer);

/// The Envoy callbacks the module calls, found in the running Envoy at load.
struct Callbacks {
    send_response: SendResponse,
    log: Log,
}

static CALLBACKS: OnceLock<Callbacks> = OnceLock::new();

unsafe extern "C" {
    /// glibc's symbol lookup; with `RTLD_DEFAULT` (null) it searches the
    /// executable's exported symbols, where Envoy's callbacks are.
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// Finds `name` among the running Envoy's exported symbols.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT (null) and a NUL-terminated name only
    // reads the process's symbol tables.
    let p = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Looks up every callback the module calls. Names what is missing.
fn resolve() -> Result<Callbacks, String> {
    let send = lookup(c"envoy_dynamic_module_callback_http_send_response");
    let log = lookup(c"envoy_dynamic_module_callback_log");
    match (send, log) {
        // SAFETY: the symbols are the callbacks of the ABI this module was
        // written for (ABI_VERSION); their C types are the ones declared
        // above. A function pointer and a data pointer have the same size
        // and representation on every platform Envoy runs on.
        (Some(send), Some(log)) => Ok(Callbacks {
            send_response: unsafe { std::mem::transmute::<*mut c_void, SendResponse>(send) },
            log: unsafe { std::mem::transmute::<*mut c_void, Log>(log) },
        }),
        (send, log) => {
            let missing: Vec<&str> = [
                (send.is_none(), "envoy_dynamic_module_callback_http_send_response"),
                (log.is_none(), "envoy_dynamic_module_callback_log"),
            ]
            .into_iter()
            .filter_map(|(m, n)| m.then_some(n))
            .collect();
            Err(missing.join(", "))
        }
    }
}

/// Writes `message` to Envoy's log (`[dynamic_modules]`), or to stderr
/// before the callbacks are known.
fn log_error(message: &str) {
    match CALLBACKS.get() {
        // SAFETY: `log` is Envoy's callback; the buffer outlives the call.
        Some(c) => unsafe { (c.log)(LOG_ERROR, ModuleBuffer::of(message.as_bytes())) },
        None => eprintln!("gateway_module: {message}"),
    }
}

/// Runs `f`, turning a panic into `None` (logged). Nothing unwinds into Envoy.
fn guarded<T>(hook: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log_error(&format!("panic in {hook}: {what}"));
            None
        }
    }
}

/// Lets a filter answer its request through Envoy.
struct EnvoyStream {
    envoy: FilterEnvoyPtr,
}

impl filter::Stream for EnvoyStream {
    fn respond(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let Some(c) = CALLBACKS.get() else { return };
        let mut hs: Vec<ModuleHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHeader {
                key_ptr: k.as_ptr().cast(),
                key_length: k.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: `envoy` is the live filter handle of the current hook; the
        // headers and body outlive the call, which copies them.
        unsafe {
            (c.send_response)(
                self.envoy,
                status,
                hs.as_mut_ptr(),
                hs.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"gateway_module"),
            )
        };
    }
}

/// Answers the request with the enforcer-failure 500 (after a panic).
fn fail_closed(envoy: FilterEnvoyPtr) {
    let mut s = EnvoyStream { envoy };
    filter::Stream::respond(
        &mut s,
        filter::FAILURE_STATUS,
        &[("content-type", "application/json")],
        filter::FAILURE_BODY.as_bytes(),
    );
}

/// Another reference to the module's configuration behind `p`.
///
/// # Safety
/// `p` must come from [`envoy_dynamic_module_on_http_filter_config_new`] and
/// not yet be destroyed.
unsafe fn config(p: ConfigModulePtr) -> Arc<Config> {
    let p = p.cast::<Config>();
    // SAFETY: `p` is the raw form of an `Arc<Config>` that is alive (the
    // caller's contract): one more strong reference, then an Arc to own it.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

/// Borrows one request's filter behind `p`.
///
/// # Safety
/// `p` must come from [`envoy_dynamic_module_on_http_filter_new`], not yet
/// be destroyed, and be used by one thread (Envoy calls a stream's hooks on
/// its worker only).
unsafe fn filter<'a>(p: FilterModulePtr) -> &'a mut Filter {
    // SAFETY: the caller's contract.
    unsafe { &mut *p.cast::<Filter>().cast_mut() }
}

/// Called once when Envoy loads the module: the ABI version, or null to
/// refuse the load.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    let checked = guarded("program init", || match resolve() {
        Ok(c) => {
            let _ = CALLBACKS.set(c);
            true
        }
        Err(missing) => {
            log_error(&format!(
                "refusing to load: the running Envoy does not offer {missing}; this module is built for Envoy 1.40 (dynamic-module ABI {})",
                ABI_VERSION.to_string_lossy()
            ));
            false
        }
    });
    if checked == Some(true) { ABI_VERSION.as_ptr() } else { std::ptr::null() }
}

/// A filter configuration (main thread).
///
/// # Safety
/// `name` and `config` point at bytes Envoy owns for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _envoy: ConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ConfigModulePtr {
    guarded("filter config", || {
        // SAFETY: Envoy's buffers, valid during this call.
        let (name, config) = unsafe { (name.bytes(), config.bytes()) };
        let c = Config::new(&String::from_utf8_lossy(name), config);
        Arc::into_raw(Arc::new(c)).cast::<c_void>()
    })
    .unwrap_or(std::ptr::null())
}

/// # Safety
/// `p` comes from `..._config_new` and is destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(p: ConfigModulePtr) {
    guarded("filter config destroy", || {
        // SAFETY: the pointer is ours (config_new) and Envoy destroys it
        // once; filters still alive keep their own references.
        drop(unsafe { Arc::from_raw(p.cast::<Config>()) });
    });
}

/// A per-route configuration. The module keeps none yet: null means
/// "nothing for this route".
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    std::ptr::null()
}

/// Nothing to free (see `..._per_route_config_new`).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_p: *const c_void) {}

/// A filter for one request (worker thread).
///
/// # Safety
/// `config` comes from `..._config_new` and is alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ConfigModulePtr,
    _envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    guarded("filter new", || {
        // SAFETY: Envoy passes the live configuration.
        let c = unsafe { self::config(config) };
        Box::into_raw(Box::new(Filter::new(c))).cast_const().cast::<c_void>()
    })
    .unwrap_or(std::ptr::null())
}

/// # Safety
/// `p` comes from `..._filter_new` and is destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(p: FilterModulePtr) {
    guarded("filter destroy", || {
        // SAFETY: the pointer is ours (filter_new) and Envoy destroys it once.
        drop(unsafe { Box::from_raw(p.cast::<Filter>().cast_mut()) });
    });
}

/// The request headers: the decision.
///
/// # Safety
/// `envoy` and `p` are the live handles of one stream, on its worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    p: FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    let decided = guarded("request headers", || {
        // SAFETY: Envoy passes this stream's live filter, on its worker.
        let f = unsafe { filter(p) };
        let mut stream = EnvoyStream { envoy };
        f.on_request_headers(&mut stream, end_of_stream)
    });
    match decided {
        Some(Headers::Continue) => HEADERS_CONTINUE,
        Some(Headers::Stop) => HEADERS_STOP_ITERATION,
        None => {
            // Fail closed: a request the module could not decide never
            // reaches the backend.
            fail_closed(envoy);
            HEADERS_STOP_ITERATION
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _end: bool,
) -> u32 {
    BODY_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(_e: FilterEnvoyPtr, _p: FilterModulePtr) -> u32 {
    TRAILERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _end: bool,
) -> u32 {
    HEADERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _end: bool,
) -> u32 {
    BODY_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
) -> u32 {
    TRAILERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(_e: FilterEnvoyPtr, _p: FilterModulePtr) {}

// Hooks Envoy 1.40 requires of every HTTP filter module, for features this
// module does not use (HTTP callouts, streams, scheduled events, watermarks).

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *mut c_void,
    _headers_size: usize,
    _body_chunks: *mut c_void,
    _body_chunks_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _stream_id: u64,
    _headers: *mut c_void,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _stream_id: u64,
    _data: *const c_void,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _stream_id: u64,
    _trailers: *mut c_void,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
    _event_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _e: FilterEnvoyPtr,
    _p: FilterModulePtr,
) {
}
