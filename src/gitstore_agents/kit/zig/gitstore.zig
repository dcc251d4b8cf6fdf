//! The GitStore task helper library for Zig: a thin layer over the C library
//! (kit/c, compiled into the same module), so Zig and C modules share one
//! JSON parser and one canonical JSON writer.
//!
//! Only `extern` declarations, `extern struct`s and slices: nothing here
//! depends on Zig's standard library, whose API changes between releases.
//! Build with the C sources and libc (the scaffolded build.py does):
//!
//!     python -m ziglang build-exe -target wasm32-wasi -O ReleaseSmall -fstrip -lc \
//!         -Igitstore main.zig gitstore/*.c -femit-bin=NAME.wasm
//!
//! A module reads its input with `readInputObject`, rejects it with
//! `reject` / `addError` + `rejectAll` (exit 65), records `finding`s and ends
//! with `emit` (canonical JSON on stdout, exit 0). docs/extensions.md has the
//! contract.

/// JSON value types, as the C library's `jtype_t`.
pub const Type = enum(c_int) { null, false, true, int, num, str, arr, obj };

/// A JSON value of the C library (`jval`): read it through the methods.
pub const Value = extern struct {
    t: Type,
    n: usize,
    cap: usize,
    i: i64,
    u: extern union {
        s: [*]const u8,
        a: [*]*Value,
        o: [*]Member,
    },

    /// The member `key` of an object (null when absent or not an object).
    pub fn get(self: *const Value, key: [*:0]const u8) ?*Value {
        return jobj_get(self, key);
    }

    /// The bytes of a string (null when not a string).
    pub fn string(self: *const Value) ?[]const u8 {
        return if (self.t == .str) self.u.s[0..self.n] else null;
    }

    /// The value of an integer (null when not an integer).
    pub fn integer(self: *const Value) ?i64 {
        return if (self.t == .int) self.i else null;
    }

    /// The elements of an array (empty when not an array).
    pub fn items(self: *const Value) []*Value {
        return if (self.t == .arr) self.u.a[0..self.n] else &[_]*Value{};
    }

    /// The members of an object (empty when not an object).
    pub fn members(self: *const Value) []Member {
        return if (self.t == .obj) self.u.o[0..self.n] else &[_]Member{};
    }

    /// Adds `value` to an object under `key` (the key must not be present; it is not copied).
    pub fn put(self: *Value, key: [*:0]const u8, value: *Value) void {
        jobj_put(self, key, value);
    }

    /// Appends `value` to an array.
    pub fn push(self: *Value, value: *Value) void {
        jarr_push(self, value);
    }
};

/// One member of an object.
pub const Member = extern struct {
    key: [*]const u8,
    klen: usize,
    val: *Value,

    /// The member's key.
    pub fn name(self: Member) []const u8 {
        return self.key[0..self.klen];
    }
};

/// The markdown-compile output an extension reads (`compiled_doc`).
pub const Compiled = extern struct {
    compiled: ?*Value,
    resource: ?*const Value,
    metadata: ?*const Value,
    spec: ?*const Value,
    body: ?*const Value,
    file_path: [*:0]const u8,
};

/// Exit code of a module that rejects its input.
pub const exit_rejected: c_int = 65;

extern var g_task_name: [*:0]const u8;
extern fn read_input_object() *Value;
extern fn compiled_load(input: *const Value, doc: *Compiled) bool;
extern fn resource_identity(doc: *const Compiled) *Value;
extern fn emit_output(value: *Value) noreturn;
extern fn errs_add(field: [*:0]const u8, constraint: [*:0]const u8, message: [*:0]const u8) void;
extern fn errs_count() usize;
extern fn errs_emit_exit(file_path: [*:0]const u8) noreturn;
extern fn finding_add(
    code: [*:0]const u8,
    field: [*:0]const u8,
    severity: [*:0]const u8,
    line: i64,
    message: [*:0]const u8,
) void;
extern fn findings_json() *Value;
extern fn jobj_get(o: *const Value, key: [*:0]const u8) ?*Value;
extern fn jobj_put(o: *Value, key: [*:0]const u8, v: *Value) void;
extern fn jarr_push(a: *Value, v: *Value) void;
extern fn jobj() *Value;
extern fn jarr() *Value;
extern fn jnull() *Value;
extern fn jbool(b: bool) *Value;
extern fn jint(v: i64) *Value;
extern fn jstr(s: [*]const u8, n: usize) *Value;
extern fn die(msg: [*:0]const u8) noreturn;

/// Names the module in its stderr lines ("<name>: out of memory").
pub fn setName(name: [*:0]const u8) void {
    g_task_name = name;
}

/// Reads all of stdin as a JSON object; rejects anything else (exit 65).
pub fn readInputObject() *Value {
    return read_input_object();
}

/// Reads `input.compiled` (the markdown-compile output); records errors for a bad shape.
pub fn loadCompiled(input: *const Value, doc: *Compiled) bool {
    return compiled_load(input, doc);
}

/// `{"apiVersion","kind","metadata"}` of the compiled resource.
pub fn resourceIdentity(doc: *const Compiled) *Value {
    return resource_identity(doc);
}

/// Records one validation error (strings are copied); see `rejectAll`.
pub fn addError(field: [*:0]const u8, constraint: [*:0]const u8, message: [*:0]const u8) void {
    errs_add(field, constraint, message);
}

/// How many validation errors were recorded.
pub fn errorCount() usize {
    return errs_count();
}

/// Prints the recorded errors (`{"errors":[...]}`, sorted by field) and exits 65.
pub fn rejectAll(file_path: [*:0]const u8) noreturn {
    errs_emit_exit(file_path);
}

/// Rejects the input with one error and exits 65.
pub fn reject(field: [*:0]const u8, constraint: [*:0]const u8, message: [*:0]const u8) noreturn {
    errs_add(field, constraint, message);
    errs_emit_exit("");
}

/// Records a finding (severity "error", "warning" or "info"; line 0 when not about a body line).
pub fn finding(
    code: [*:0]const u8,
    field: [*:0]const u8,
    severity: [*:0]const u8,
    line: i64,
    message: [*:0]const u8,
) void {
    finding_add(code, field, severity, line, message);
}

/// The recorded findings as a sorted JSON array.
pub fn findings() *Value {
    return findings_json();
}

/// Prints `value` in canonical JSON and exits 0.
pub fn emit(value: *Value) noreturn {
    emit_output(value);
}

/// Ends the run with exit 1 and "<name>: <msg>" on stderr (a bug, not bad input).
pub fn fail(msg: [*:0]const u8) noreturn {
    die(msg);
}

/// A new empty object.
pub fn object() *Value {
    return jobj();
}

/// A new empty array.
pub fn array() *Value {
    return jarr();
}

/// JSON null.
pub fn nullValue() *Value {
    return jnull();
}

/// A boolean.
pub fn boolean(b: bool) *Value {
    return jbool(b);
}

/// An integer (outputs are integers only: no floats in canonical JSON).
pub fn int(v: i64) *Value {
    return jint(v);
}

/// A string (copied).
pub fn str(s: []const u8) *Value {
    return jstr(s.ptr, s.len);
}
