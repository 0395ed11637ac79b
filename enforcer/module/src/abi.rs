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
//! * the checks at load: the running Envoy must be of the release these
//!   declarations were written for (version.rs), and Envoy's callbacks are
//!   looked up by name in it (`dlsym`) rather than linked, so a module
//!   loaded by another Envoy refuses to load, saying why, instead of
//!   failing at the first request.
//!
//! The ABI belongs to one Envoy version. When the Envoy pin moves, the
//! declarations here are checked against the new version's ABI and
//! [`ABI_VERSION`] moves with it.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use crate::filter::{self, Body, Config, Filter, Headers, Mode, Route};

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
const BODY_STOP_NO_BUFFER: u32 = 3;
const TRAILERS_CONTINUE: u32 = 0;
const TRAILERS_STOP_ITERATION: u32 = 1;
// `envoy_dynamic_module_type_log_level`.
const LOG_ERROR: u32 = 4;

/// A header as Envoy lends it (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct EnvoyHeader {
    key_ptr: *const c_char,
    key_length: usize,
    value_ptr: *const c_char,
    value_length: usize,
}

/// Envoy's per-filter scheduler (`..._http_filter_scheduler_module_ptr`).
type SchedulerPtr = *mut c_void;
/// A span of Envoy's trace: the request's (Envoy's own), or a child the
/// module spawned and must finish once (`..._span_envoy_ptr`,
/// `..._child_span_module_ptr`).
type SpanPtr = *mut c_void;

/// A child span the module spawned and has not finished yet.
struct ChildSpan(SpanPtr);

// `envoy_dynamic_module_type_http_header_type`.
const REQUEST_HEADER: u32 = 0;
const RESPONSE_HEADER: u32 = 2;
// `envoy_dynamic_module_type_on_http_filter_request_body_status`.
const BODY_STOP_AND_BUFFER: u32 = 1;
// `envoy_dynamic_module_type_attribute_id`: `source.address`, the client's
// address as Envoy determined it (after x-forwarded-for and the trusted hops).
const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
// `envoy_dynamic_module_type_http_body_type`.
const RECEIVED_REQUEST_BODY: u32 = 0;
const BUFFERED_REQUEST_BODY: u32 = 1;

/// Declares the Envoy callbacks the module calls: their C types, a struct
/// holding them, and their lookup by name at load.
macro_rules! callbacks {
    ($($field:ident: $symbol:literal fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The Envoy callbacks the module calls, found in the running Envoy at load.
        struct Callbacks {
            $($field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        /// Looks up every callback the module calls. Names what is missing.
        fn resolve() -> Result<Callbacks, String> {
            let mut missing: Vec<&str> = Vec::new();
            $(let $field = lookup($symbol);
            if $field.is_none() {
                missing.push($symbol.to_str().unwrap_or_default());
            })*
            if !missing.is_empty() {
                return Err(missing.join(", "));
            }
            // SAFETY: each symbol is the callback of the ABI this module was
            // written for (ABI_VERSION), with the C type declared here; a
            // function pointer and a data pointer have the same size and
            // representation on every platform Envoy runs on.
            Ok(Callbacks {
                $($field: unsafe {
                    std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                        $field.unwrap_or(std::ptr::null_mut()),
                    )
                },)*
            })
        }
    };
}

callbacks! {
    log: c"envoy_dynamic_module_callback_log" fn(u32, ModuleBuffer);
    get_headers_size: c"envoy_dynamic_module_callback_http_get_headers_size" fn(FilterEnvoyPtr, u32) -> usize;
    get_headers: c"envoy_dynamic_module_callback_http_get_headers" fn(FilterEnvoyPtr, u32, *mut EnvoyHeader) -> bool;
    set_header: c"envoy_dynamic_module_callback_http_set_header" fn(FilterEnvoyPtr, u32, ModuleBuffer, ModuleBuffer) -> bool;
    add_header: c"envoy_dynamic_module_callback_http_add_header" fn(FilterEnvoyPtr, u32, ModuleBuffer, ModuleBuffer) -> bool;
    send_response: c"envoy_dynamic_module_callback_http_send_response"
        fn(FilterEnvoyPtr, u32, *mut ModuleHeader, usize, ModuleBuffer, ModuleBuffer);
    set_metadata: c"envoy_dynamic_module_callback_http_set_dynamic_metadata_string"
        fn(FilterEnvoyPtr, ModuleBuffer, ModuleBuffer, ModuleBuffer);
    clear_route_cache: c"envoy_dynamic_module_callback_http_clear_route_cache" fn(FilterEnvoyPtr);
    body_size: c"envoy_dynamic_module_callback_http_get_body_size" fn(FilterEnvoyPtr, u32) -> usize;
    body_chunks_size: c"envoy_dynamic_module_callback_http_get_body_chunks_size" fn(FilterEnvoyPtr, u32) -> usize;
    body_chunks: c"envoy_dynamic_module_callback_http_get_body_chunks" fn(FilterEnvoyPtr, u32, *mut EnvoyBuffer) -> bool;
    received_buffered_body: c"envoy_dynamic_module_callback_http_received_buffered_request_body" fn(FilterEnvoyPtr) -> bool;
    attribute_string: c"envoy_dynamic_module_callback_http_filter_get_attribute_string"
        fn(FilterEnvoyPtr, u32, *mut EnvoyBuffer) -> bool;
    active_span: c"envoy_dynamic_module_callback_http_get_active_span" fn(FilterEnvoyPtr) -> SpanPtr;
    span_spawn_child: c"envoy_dynamic_module_callback_http_span_spawn_child" fn(FilterEnvoyPtr, SpanPtr, ModuleBuffer) -> SpanPtr;
    span_set_tag: c"envoy_dynamic_module_callback_http_span_set_tag" fn(SpanPtr, ModuleBuffer, ModuleBuffer);
    child_span_finish: c"envoy_dynamic_module_callback_http_child_span_finish" fn(SpanPtr);
    route_config: c"envoy_dynamic_module_callback_get_most_specific_route_config" fn(FilterEnvoyPtr) -> *const c_void;
    continue_decoding: c"envoy_dynamic_module_callback_http_filter_continue_decoding" fn(FilterEnvoyPtr);
    scheduler_new: c"envoy_dynamic_module_callback_http_filter_scheduler_new" fn(FilterEnvoyPtr) -> SchedulerPtr;
    scheduler_commit: c"envoy_dynamic_module_callback_http_filter_scheduler_commit" fn(SchedulerPtr, u64);
    scheduler_delete: c"envoy_dynamic_module_callback_http_filter_scheduler_delete" fn(SchedulerPtr);
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

/// Writes `message` to Envoy's log (`[dynamic_modules]`), or to stderr
/// before the callbacks are known.
pub(crate) fn log_error(message: &str) {
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

/// One request's stream in Envoy, for the filter (filter.rs). Callbacks go
/// to the filter handle of the hook being run.
struct EnvoyStream<'c> {
    envoy: FilterEnvoyPtr,
    c: &'c Callbacks,
    /// The request's open child span (kept by the request's state between
    /// hooks).
    span: &'c mut Option<ChildSpan>,
}

impl EnvoyStream<'_> {
    fn set(&mut self, kind: u32, name: &str, value: Option<&str>) {
        // A null value removes the header (there is no remove callback).
        let v =
            value.map(|v| ModuleBuffer::of(v.as_bytes())).unwrap_or(ModuleBuffer { ptr: std::ptr::null(), length: 0 });
        // SAFETY: `envoy` is the live handle of the current hook; Envoy
        // copies the buffers, which outlive the call.
        unsafe { (self.c.set_header)(self.envoy, kind, ModuleBuffer::of(name.as_bytes()), v) };
    }
}

impl EnvoyStream<'_> {
    /// The body Envoy holds of `kind` (buffered or just received) appended
    /// to `out`, up to `limit` bytes in all.
    fn append_body(&mut self, kind: u32, out: &mut Vec<u8>, limit: usize) {
        // SAFETY: the live handle of the current hook.
        let n = unsafe { (self.c.body_chunks_size)(self.envoy, kind) };
        if n == 0 {
            return;
        }
        let mut chunks = vec![EnvoyBuffer { ptr: std::ptr::null(), length: 0 }; n];
        // SAFETY: `chunks` has room for the `n` chunks Envoy reported.
        if !unsafe { (self.c.body_chunks)(self.envoy, kind, chunks.as_mut_ptr()) } {
            return;
        }
        for chunk in chunks {
            // SAFETY: Envoy's body bytes, valid during this hook.
            let bytes = unsafe { chunk.bytes() };
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Whether the piece just received is the body another filter held
    /// (then it is all of it, and nothing else is buffered for this one).
    fn received_is_buffered(&mut self) -> bool {
        // SAFETY: the live handle of the current hook.
        unsafe { (self.c.received_buffered_body)(self.envoy) }
    }
}

impl filter::Stream for EnvoyStream<'_> {
    fn client_address(&mut self) -> Option<String> {
        let mut out = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };
        // SAFETY: the live handle of the current hook; Envoy writes a
        // pointer to its own bytes and their length into `out`.
        if !unsafe { (self.c.attribute_string)(self.envoy, ATTRIBUTE_SOURCE_ADDRESS, &mut out) } {
            return None;
        }
        // SAFETY: Envoy's bytes, valid during this hook; copied at once.
        Some(String::from_utf8_lossy(unsafe { out.bytes() }).into_owned())
    }

    fn request_body(&mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.request_body_size().min(limit));
        if !self.received_is_buffered() {
            self.append_body(BUFFERED_REQUEST_BODY, &mut out, limit);
        }
        self.append_body(RECEIVED_REQUEST_BODY, &mut out, limit);
        out
    }

    fn request_body_size(&mut self) -> usize {
        // SAFETY: the live handle of the current hook.
        let received = unsafe { (self.c.body_size)(self.envoy, RECEIVED_REQUEST_BODY) };
        if self.received_is_buffered() {
            return received;
        }
        // SAFETY: as above.
        received + unsafe { (self.c.body_size)(self.envoy, BUFFERED_REQUEST_BODY) }
    }

    fn request_headers(&mut self) -> Vec<(String, String)> {
        // SAFETY: the live handle of the current hook.
        let n = unsafe { (self.c.get_headers_size)(self.envoy, REQUEST_HEADER) };
        let mut raw =
            vec![
                EnvoyHeader { key_ptr: std::ptr::null(), key_length: 0, value_ptr: std::ptr::null(), value_length: 0 };
                n
            ];
        // SAFETY: `raw` has room for the `n` headers Envoy reported.
        if n == 0 || !unsafe { (self.c.get_headers)(self.envoy, REQUEST_HEADER, raw.as_mut_ptr()) } {
            return Vec::new();
        }
        raw.iter()
            .map(|h| {
                // SAFETY: Envoy's header bytes, valid during this hook.
                let (k, v) = unsafe {
                    (
                        EnvoyBuffer { ptr: h.key_ptr, length: h.key_length }.bytes(),
                        EnvoyBuffer { ptr: h.value_ptr, length: h.value_length }.bytes(),
                    )
                };
                (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    }

    fn set_request_header(&mut self, name: &str, value: &str) {
        self.set(REQUEST_HEADER, name, Some(value));
    }

    fn remove_request_header(&mut self, name: &str) {
        self.set(REQUEST_HEADER, name, None);
    }

    fn add_response_header(&mut self, name: &str, value: &str) {
        // SAFETY: as in `set`.
        unsafe {
            (self.c.add_header)(
                self.envoy,
                RESPONSE_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
    }

    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str) {
        // SAFETY: as in `set`.
        unsafe {
            (self.c.set_metadata)(
                self.envoy,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: the live handle of the current hook.
        unsafe { (self.c.clear_route_cache)(self.envoy) };
    }

    fn begin_span(&mut self, name: &str) {
        if self.span.is_some() {
            return;
        }
        // SAFETY: the live handle of the current hook; the active span is
        // Envoy's, valid for the stream's life (null: not traced).
        let parent = unsafe { (self.c.active_span)(self.envoy) };
        if parent.is_null() {
            return;
        }
        // SAFETY: as above; Envoy copies the name.
        let child = unsafe { (self.c.span_spawn_child)(self.envoy, parent, ModuleBuffer::of(name.as_bytes())) };
        if !child.is_null() {
            *self.span = Some(ChildSpan(child));
        }
    }

    fn end_span(&mut self, tags: &[(&str, String)]) {
        let Some(ChildSpan(span)) = self.span.take() else { return };
        for (k, v) in tags {
            // SAFETY: the child span is ours and not finished; Envoy copies
            // the buffers.
            unsafe { (self.c.span_set_tag)(span, ModuleBuffer::of(k.as_bytes()), ModuleBuffer::of(v.as_bytes())) };
        }
        // SAFETY: finished once: it was taken out of the request's state.
        unsafe { (self.c.child_span_finish)(span) };
    }

    fn respond(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let mut hs: Vec<ModuleHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHeader {
                key_ptr: k.as_ptr().cast(),
                key_length: k.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: the live handle of the current hook; the headers and body
        // outlive the call, which copies them.
        unsafe {
            (self.c.send_response)(
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

/// Answers the request with the enforcer-failure 500 (after a panic; an
/// open span is finished when the filter is destroyed).
fn fail_closed(envoy: FilterEnvoyPtr) {
    if let Some(c) = CALLBACKS.get() {
        filter::fail(&mut EnvoyStream { envoy, c, span: &mut None });
    }
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

/// A decision being made on the module's runtime, and where its answer goes.
struct Waiting {
    /// Envoy's scheduler for the stream; `None` once the filter is gone
    /// (then the answer is dropped). Used and deleted under the lock, so it
    /// is never committed to after its deletion.
    scheduler: Option<Scheduler>,
    /// The answer, once made.
    answer: Option<filter::Answer>,
}

/// Envoy's scheduler handle, moved to the runtime's thread to commit there
/// (Envoy allows commits from any thread).
struct Scheduler(SchedulerPtr);

// SAFETY: Envoy documents scheduler commits as allowed from any thread; the
// handle is only used under `Waiting`'s lock.
unsafe impl Send for Scheduler {}

/// One request's filter state behind the module pointer Envoy holds.
struct Stream {
    filter: Filter,
    waiting: Option<Arc<parking_lot::Mutex<Waiting>>>,
    /// The check's span, open while the decision is being made.
    span: Option<ChildSpan>,
}

/// Borrows one request's state behind `p`.
///
/// # Safety
/// `p` must come from [`envoy_dynamic_module_on_http_filter_new`], not yet
/// be destroyed, and be used by one thread (Envoy calls a stream's hooks on
/// its worker only).
unsafe fn stream<'a>(p: FilterModulePtr) -> &'a mut Stream {
    // SAFETY: the caller's contract.
    unsafe { &mut *p.cast::<Stream>().cast_mut() }
}

/// Called once when Envoy loads the module: the ABI version, or null to
/// refuse the load.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    let checked = guarded("program init", || {
        // The version first, told on stderr: an Envoy of another release
        // may offer every callback by name and declare them differently
        // (its log callback included).
        if let Err(why) = crate::version::running().and_then(|v| crate::version::check(&v)) {
            log_error(&format!("refusing to load: {why}"));
            return false;
        }
        match resolve() {
            Ok(c) => {
                let _ = CALLBACKS.set(c);
                true
            }
            Err(missing) => {
                log_error(&format!(
                    "refusing to load: the running Envoy does not offer {missing}; this module is built for Envoy {}.x (dynamic-module ABI {})",
                    crate::version::ENVOY_RELEASE,
                    ABI_VERSION.to_string_lossy()
                ));
                false
            }
        }
    });
    if checked == Some(true) { ABI_VERSION.as_ptr() } else { std::ptr::null() }
}

/// A filter configuration (main thread). Null refuses it (Envoy rejects the
/// listener, and keeps the one it has).
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
        match Config::new(&String::from_utf8_lossy(name), config) {
            Ok(c) => Arc::into_raw(Arc::new(c)).cast::<c_void>(),
            Err(e) => {
                log_error(&format!("filter configuration refused: {e}"));
                std::ptr::null()
            }
        }
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

/// A route's settings (main thread): the enforcer's context for the route.
/// Null refuses the route configuration (Envoy keeps the one it has).
///
/// # Safety
/// `config` points at bytes Envoy owns for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded("route config", || {
        // SAFETY: Envoy's buffer, valid during this call.
        match Route::parse(unsafe { config.bytes() }) {
            Ok(r) => Box::into_raw(Box::new(r)).cast_const().cast::<c_void>(),
            Err(e) => {
                log_error(&format!("route configuration refused: {e}"));
                std::ptr::null()
            }
        }
    })
    .unwrap_or(std::ptr::null())
}

/// # Safety
/// `p` comes from `..._per_route_config_new` and is destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(p: *const c_void) {
    guarded("route config destroy", || {
        if !p.is_null() {
            // SAFETY: the pointer is ours (per_route_config_new), destroyed once.
            drop(unsafe { Box::from_raw(p.cast::<Route>().cast_mut()) });
        }
    });
}

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
        Box::into_raw(Box::new(Stream { filter: Filter::new(c), waiting: None, span: None }))
            .cast_const()
            .cast::<c_void>()
    })
    .unwrap_or(std::ptr::null())
}

/// # Safety
/// `p` comes from `..._filter_new` and is destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(p: FilterModulePtr) {
    guarded("filter destroy", || {
        // SAFETY: the pointer is ours (filter_new) and Envoy destroys it once.
        let mut s = unsafe { Box::from_raw(p.cast::<Stream>().cast_mut()) };
        if let (Some(ChildSpan(span)), Some(c)) = (s.span.take(), CALLBACKS.get()) {
            // A check cut short (the client left, a panic): its span ends
            // here, once.
            // SAFETY: the child span is ours and not finished.
            unsafe { (c.child_span_finish)(span) };
        }
        if let (Some(w), Some(c)) = (&s.waiting, CALLBACKS.get()) {
            // A decision still on its way: its answer goes nowhere now.
            if let Some(Scheduler(sch)) = w.lock().scheduler.take() {
                // SAFETY: the scheduler made for this stream, deleted once,
                // under the lock the committing side takes.
                unsafe { (c.scheduler_delete)(sch) };
            }
        }
    });
}

/// What the filter's answer to the headers tells Envoy; a wait is handed to
/// the module's runtime ([`wait`]).
fn headers_status(envoy: FilterEnvoyPtr, s: &mut Stream, h: Headers) -> u32 {
    match h {
        Headers::Continue => HEADERS_CONTINUE,
        Headers::Stop | Headers::Buffer => HEADERS_STOP_ITERATION,
        Headers::Wait(pending) => {
            wait(envoy, s, pending);
            HEADERS_STOP_ITERATION
        }
    }
}

/// The same for a piece of the body (`trailers`: for the trailers).
fn body_status(envoy: FilterEnvoyPtr, s: &mut Stream, b: Body, trailers: bool) -> u32 {
    match (b, trailers) {
        (Body::Continue, false) => BODY_CONTINUE,
        (Body::Continue, true) => TRAILERS_CONTINUE,
        (Body::Buffer, false) => BODY_STOP_AND_BUFFER,
        (Body::Stop, false) => BODY_STOP_NO_BUFFER,
        (Body::Buffer | Body::Stop, true) => TRAILERS_STOP_ITERATION,
        (Body::Wait(pending), _) => {
            wait(envoy, s, pending);
            if trailers { TRAILERS_STOP_ITERATION } else { BODY_STOP_AND_BUFFER }
        }
    }
}

/// Makes the decision on the module's runtime; the stream is resumed
/// through Envoy's scheduler ([`envoy_dynamic_module_on_http_filter_scheduled`]).
fn wait(envoy: FilterEnvoyPtr, s: &mut Stream, pending: filter::Pending) {
    let (Some(c), Mode::Enforcer(shared)) = (CALLBACKS.get(), &s.filter.config.mode) else {
        fail_closed(envoy);
        return;
    };
    // SAFETY: the live handle of the current hook.
    let sch = unsafe { (c.scheduler_new)(envoy) };
    let waiting = Arc::new(parking_lot::Mutex::new(Waiting { scheduler: Some(Scheduler(sch)), answer: None }));
    s.waiting = Some(Arc::clone(&waiting));
    shared.runtime.spawn(async move {
        let answer = pending.await;
        let mut w = waiting.lock();
        w.answer = Some(answer);
        if let (Some(Scheduler(sch)), Some(c)) = (&w.scheduler, CALLBACKS.get()) {
            // SAFETY: the stream's scheduler, not deleted (it is
            // deleted under this lock, and then taken out).
            unsafe { (c.scheduler_commit)(*sch, 0) };
        }
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
    let status = guarded("request headers", || {
        // SAFETY: Envoy passes this stream's live filter, on its worker.
        let s = unsafe { stream(p) };
        let c = CALLBACKS.get()?;
        // SAFETY: the route's settings, ours (per_route_config_new), alive
        // while the route is.
        let route = unsafe { (c.route_config)(envoy).cast::<Route>().as_ref() };
        let h = s.filter.on_request_headers(&mut EnvoyStream { envoy, c, span: &mut s.span }, route, end_of_stream);
        Some(headers_status(envoy, s, h))
    });
    match status {
        Some(Some(st)) => st,
        // Fail closed: a request the module could not decide never
        // reaches the backend.
        _ => {
            fail_closed(envoy);
            HEADERS_STOP_ITERATION
        }
    }
}

/// A decision made on the runtime is back: apply it, and resume the request.
///
/// # Safety
/// `envoy` and `p` are the live handles of one stream, on its worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy: FilterEnvoyPtr,
    p: FilterModulePtr,
    _event_id: u64,
) {
    let done = guarded("scheduled", || {
        // SAFETY: Envoy passes this stream's live filter, on its worker.
        let s = unsafe { stream(p) };
        let c = CALLBACKS.get()?;
        let waiting = s.waiting.take()?;
        let answer = {
            let mut w = waiting.lock();
            // The scheduler has done its one job: deleted here, under the
            // lock (destroy no longer sees it, the stream no longer waits).
            if let Some(Scheduler(sch)) = w.scheduler.take() {
                // SAFETY: the scheduler made for this stream, deleted once.
                unsafe { (c.scheduler_delete)(sch) };
            }
            w.answer.take()
        }?;
        let h = s.filter.decided(&mut EnvoyStream { envoy, c, span: &mut s.span }, answer);
        if matches!(h, Headers::Continue) {
            // SAFETY: the live handle of the current hook.
            unsafe { (c.continue_decoding)(envoy) };
        }
        Some(())
    });
    if done.flatten().is_none() {
        fail_closed(envoy);
    }
}

/// A piece of the request body: held while a decision is being made, and
/// collected for a route that sends the body to the enforcer.
///
/// # Safety
/// `envoy` and `p` are the live handles of one stream, on its worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    p: FilterModulePtr,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { collect("request body", envoy, p, false, |f, es| f.on_request_body(es, end_of_stream)) }
}

/// The request's trailers: the end of a body still being collected.
///
/// # Safety
/// `envoy` and `p` are the live handles of one stream, on its worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: FilterEnvoyPtr,
    p: FilterModulePtr,
) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { collect("request trailers", envoy, p, true, |f, es| f.on_request_trailers(es)) }
}

/// A piece of the request body (`trailers`: its trailers) for `step`: held
/// while a decision is being made, passed on when the route does not send the
/// body to the enforcer, the request refused when the hook fails.
///
/// # Safety
/// `envoy` and `p` are the live handles of one stream, on its worker.
unsafe fn collect(
    hook: &str,
    envoy: FilterEnvoyPtr,
    p: FilterModulePtr,
    trailers: bool,
    step: impl FnOnce(&mut Filter, &mut EnvoyStream<'_>) -> Body,
) -> u32 {
    let status = guarded(hook, || {
        // SAFETY: Envoy passes this stream's live filter, on its worker.
        let s = unsafe { stream(p) };
        let b = if s.waiting.is_some() {
            Body::Buffer
        } else if !s.filter.buffering() {
            Body::Continue
        } else {
            let c = CALLBACKS.get()?;
            step(&mut s.filter, &mut EnvoyStream { envoy, c, span: &mut s.span })
        };
        Some(body_status(envoy, s, b, trailers))
    });
    match status {
        Some(Some(st)) => st,
        _ => {
            fail_closed(envoy);
            if trailers { TRAILERS_STOP_ITERATION } else { BODY_STOP_NO_BUFFER }
        }
    }
}

/// Adds the response headers the enforcer asked for.
///
/// # Safety
/// `envoy` and `p` are the live handles of one stream, on its worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    p: FilterModulePtr,
    _end: bool,
) -> u32 {
    guarded("response headers", || {
        // SAFETY: Envoy passes this stream's live filter, on its worker.
        let s = unsafe { stream(p) };
        if let Some(c) = CALLBACKS.get() {
            s.filter.on_response_headers(&mut EnvoyStream { envoy, c, span: &mut s.span });
        }
    });
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
// module does not use (HTTP callouts and streams, watermarks).

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
