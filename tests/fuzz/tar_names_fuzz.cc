// Fuzz target: the name handling of the bundle tar writer
// (agent/bundle/archive.h, TarGzWriter): ustar name/prefix splitting, pax
// path records for long or non-ASCII names, the PaxHeader member names.
// The input is up to 8 member names separated by NUL bytes (a file name
// never holds one). Each name is written twice, in one archive each: as
// given (the writer's own contract), and as the bundle builder forms names
// from collected paths (agent/bundle/bundle.cc and collect_files.cc:
// "<root>/logs/" + MemberPathOf(path), root "setdiag-bundle-<store>-<time>"). Both
// archives are read back with libarchive, as the CLI and
// tests/unit/agent/bundle/tar_reader.h do.
//
// Oracles (issue 13: "the tar writer's name handling: no .., no absolute
// paths"): no member read back has a ".." component or starts with '/'
// (a writer may refuse such a name, or make it safe, but must not write
// it); a name without those is read back exactly as written; the builder's
// archive reads to the end without error and holds one member per name.

#include <archive.h>
#include <archive_entry.h>

#include <string>
#include <vector>

#include "agent/bundle/archive.h"
#include "fuzz_util.h"

namespace {

using setdiag::agent::bundle::TarGzWriter;
using setdiag::fuzz::Fail;

bool HasDotDot(std::string_view name) {
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    if (name.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

bool Unsafe(std::string_view name) { return name.starts_with('/') || HasDotDot(name); }

struct ReadBack {
  std::vector<std::string> names;
  bool clean_end = false;  // ARCHIVE_EOF after the last header
  std::string error;
};

ReadBack Read(const std::string& path) {
  ReadBack out;
  archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_filename(a, path.c_str(), 10240) != ARCHIVE_OK) {
    out.error = archive_error_string(a) ? archive_error_string(a) : "open failed";
    archive_read_free(a);
    return out;
  }
  archive_entry* e = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    const char* utf8 = archive_entry_pathname_utf8(e);
    const char* raw = archive_entry_pathname(e);
    out.names.emplace_back(utf8 ? utf8 : raw ? raw : "");
    // A reader that does not convert (raw bytes) must see a safe name too.
    if (raw && Unsafe(raw)) out.names.emplace_back(raw);
    archive_read_data_skip(a);
  }
  out.clean_end = rc == ARCHIVE_EOF;
  if (!out.clean_end && archive_error_string(a)) out.error = archive_error_string(a);
  archive_read_free(a);
  return out;
}

// Writes the names; returns those the writer accepted.
std::vector<std::string> Write(const std::string& path, const std::vector<std::string>& names) {
  auto w = TarGzWriter::Create(path);
  if (!w.ok()) Fail("cannot create the scratch archive", w.status().ToString());
  std::vector<std::string> accepted;
  for (const auto& name : names) {
    auto sha = (*w)->AddBytes(name, "x\n", 1'768'471'200);
    if (sha.ok()) {
      accepted.push_back(name);
    } else if (sha.status().code() != absl::StatusCode::kInvalidArgument &&
               sha.status().code() != absl::StatusCode::kFailedPrecondition) {
      Fail("AddBytes failed for a reason other than the name", sha.status().ToString());
    }
  }
  if (!(*w)->Close().ok()) Fail("Close failed");
  return accepted;
}

void Check(const std::vector<std::string>& written, const ReadBack& got, bool builder,
           std::string_view input) {
  for (const auto& n : got.names) {
    if (Unsafe(n)) Fail("an archive member with a '..' component or an absolute path", n);
  }
  if (builder) {
    if (!got.clean_end) Fail("the builder-form archive does not read back to its end", got.error);
    if (got.names.size() != written.size())
      Fail("the builder-form archive has the wrong number of members", input);
  }
  // Exact names, in order, where both sides have them.
  for (size_t i = 0; i < written.size() && i < got.names.size(); ++i) {
    if (!Unsafe(written[i]) && got.names[i] != written[i])
      Fail("a member name read back differs from the name written",
           written[i] + " -> " + got.names[i]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = setdiag::fuzz::AsText(data, size);
  std::vector<std::string> raw;
  size_t start = 0;
  while (raw.size() < 8 && start <= input.size()) {
    size_t end = input.find('\0', start);
    if (end == std::string_view::npos) end = input.size();
    raw.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  std::vector<std::string> built;
  for (const auto& p : raw) {
    built.push_back(std::string("setdiag-bundle-1042-20260115T100000Z/logs/") +
                    setdiag::agent::bundle::MemberPathOf(p));
  }
  const std::string dir = setdiag::fuzz::ScratchDir();
  {
    auto accepted = Write(dir + "/raw.tar.gz", raw);
    Check(accepted, Read(dir + "/raw.tar.gz"), false, input);
  }
  {
    auto accepted = Write(dir + "/built.tar.gz", built);
    Check(accepted, Read(dir + "/built.tar.gz"), true, input);
  }
  return 0;
}
