#pragma once
// Reads a bundle (.tar.gz) back with libarchive, as the CLI and a support
// engineer's tools do: the tests check what the agent's own writer wrote.

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace setdiag::testing {

struct TarEntry {
  std::string name;
  std::string data;
  int64_t size = 0;
  int perm = 0;
  int64_t mtime = 0;
  int64_t uid = -1;
  int type = 0;
};

// The whole archive must read without error. Names as UTF-8, whatever the
// locale of the test process.
inline std::vector<TarEntry> ReadTarGz(const std::string& path) {
  std::vector<TarEntry> out;
  archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 10240), ARCHIVE_OK)
      << archive_error_string(a);
  archive_entry* e = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    TarEntry entry;
    const char* utf8 = archive_entry_pathname_utf8(e);
    entry.name = utf8 ? utf8 : archive_entry_pathname(e);
    entry.size = archive_entry_size(e);
    entry.perm = static_cast<int>(archive_entry_perm(e));
    entry.mtime = archive_entry_mtime(e);
    entry.uid = archive_entry_uid(e);
    entry.type = static_cast<int>(archive_entry_filetype(e));
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0)
      entry.data.append(buf, static_cast<size_t>(n));
    EXPECT_GE(n, 0) << archive_error_string(a);
    out.push_back(std::move(entry));
  }
  EXPECT_EQ(rc, ARCHIVE_EOF) << archive_error_string(a);
  archive_read_free(a);
  return out;
}

}  // namespace setdiag::testing
