//! @NAME@: a GitStore catalog extension (docs/extensions.md).
//!
//! stdin:  {"compiled":<markdown-compile output>,"extension":{"name":"@NAME@","version":...},
//!          "parameters":{"min_title_length":10}}
//! stdout: {"findings":[{"code","field","message","severity"}...],"resource":{apiVersion,kind,metadata}}
//! exit 65 with {"errors":[...]} when the input is not what this extension reads.
const gs = @import("gitstore/gitstore.zig");

const extension_name = "@NAME@";

fn eql(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    for (a, b) |x, y| {
        if (x != y) return false;
    }
    return true;
}

/// Code points of valid UTF-8 (every byte that does not continue a sequence).
fn codePoints(s: []const u8) usize {
    var n: usize = 0;
    for (s) |b| {
        if (b & 0xC0 != 0x80) n += 1;
    }
    return n;
}

pub fn main() void {
    gs.setName(extension_name);
    const input = gs.readInputObject();

    const extension = input.get("extension");
    const name = if (extension) |e| e.get("name") else null;
    const name_ok = if (name) |n| (if (n.string()) |s| eql(s, extension_name) else false) else false;
    if (!name_ok) {
        gs.addError("extension.name", "enum", "this module implements the extension \"" ++ extension_name ++ "\"");
    }
    var min_title: i64 = 10;
    const parameters = input.get("parameters");
    const min = if (parameters) |p| p.get("min_title_length") else null;
    if (min) |m| {
        if (m.t != .null) {
            const v = m.integer();
            if (v == null or v.? < 1 or v.? > 1000) {
                gs.addError("parameters.min_title_length", "type", "parameters.min_title_length must be an integer from 1 to 1000");
            } else {
                min_title = v.?;
            }
        }
    }
    var doc: gs.Compiled = undefined;
    _ = gs.loadCompiled(input, &doc);
    if (gs.errorCount() > 0) gs.rejectAll(doc.file_path);

    const title = if (doc.spec) |spec| spec.get("title") else null;
    const text = if (title) |t| t.string() else null;
    if (text == null or text.?.len == 0) {
        gs.finding("title-missing", "spec.title", "warning", 0, "spec.title is missing");
    } else if (@as(i64, @intCast(codePoints(text.?))) < min_title) {
        gs.finding("title-too-short", "spec.title", "warning", 0, "spec.title is shorter than parameters.min_title_length");
    }

    const out = gs.object();
    out.put("findings", gs.findings());
    out.put("resource", gs.resourceIdentity(&doc));
    gs.emit(out);
}
