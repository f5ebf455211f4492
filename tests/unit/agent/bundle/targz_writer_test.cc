// TarGzWriter (agent/bundle/archive.h), our own tar + gzip writer: what it
// writes is read back with libarchive (as the CLI does) and with the system
// tar and gzip, and hashed independently with sha256sum. Names that ustar
// cannot hold (long, Cyrillic) go through pax records; block boundaries;
// a large incompressible file is streamed; a file that shrinks keeps the
// archive well formed; write errors (a directory, a full disk) are errors.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "agent/bundle/archive.h"
#include "common/strings.h"
#include "tar_reader.h"
#include "temp_dir.h"

namespace setdiag::agent::bundle {
namespace {

using ::testing::HasSubstr;
using testutil::ReadBytes;
using testutil::TempDir;
using testutil::WriteBytes;

constexpr int64_t kMtime = 1'795'000'000;  // 2026-11-18

// Runs a shell command; its exit status, stdout in `out`.
int Sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    if (out) out->append(buf, n);
  }
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// sha256sum's digest of a file: independent of the writer's OpenSSL code.
std::string Sha256Sum(const std::string& path) {
  std::string out;
  EXPECT_EQ(Sh(Cat("sha256sum '", path, "'"), &out), 0);
  return out.substr(0, out.find(' '));
}

std::string Sha256Of(const std::string& bytes, const TempDir& dir) {
  std::string f = dir.File("hash-input");
  WriteBytes(f, bytes);
  return Sha256Sum(f);
}

using Entry = setdiag::testing::TarEntry;

std::vector<Entry> ReadWithLibarchive(const std::string& path) {
  return setdiag::testing::ReadTarGz(path);
}

// Extracts with GNU tar (UTF-8 locale) into a new directory; tar's exit
// status must be 0 (it is 2 on a bad checksum or a truncated archive).
std::string ExtractWithTar(const std::string& tgz, const TempDir& dir) {
  std::string into = dir.File("x");
  EXPECT_EQ(
      Sh(Cat("mkdir -p '", into, "' && LC_ALL=C.UTF-8 tar -xzf '", tgz, "' -C '", into, "' 2>&1")),
      0);
  return into;
}

// The uncompressed tar stream, by gzip -dc.
std::string Gunzip(const std::string& tgz) {
  std::string out;
  EXPECT_EQ(Sh(Cat("gzip -dc '", tgz, "'"), &out), 0);
  return out;
}

absl::StatusOr<std::unique_ptr<TarGzWriter>> MustCreate(const std::string& path) {
  auto w = TarGzWriter::Create(path);
  EXPECT_TRUE(w.ok()) << w.status();
  return w;
}

TEST(TarGzWriterTest, LongAndCyrillicNamesRoundTrip) {
  TempDir dir;
  const std::string tgz = dir.File("names.tar.gz");
  const std::string dirs120 = Cat(std::string(59, 'd'), "/", std::string(60, 'e'));
  const std::vector<std::string> names = {
      "short.txt",
      Cat(dirs120, "/split-into-prefix.log"),  // 142 bytes: prefix + name
      std::string(101, 'n'),                   // > 100, no '/' to split at
      Cat(dirs120, "/", std::string(100, 'f'), "/", std::string(60, 'g'), ".log"),  // > 255
      "setdiag-bundle-1042/logs/отчёт/журнал кассы №3.log",  // Cyrillic, short
      Cat("setdiag-bundle-1042/", std::string(40, 'l'), "/Журнал_кассы_и_сервера_магазина",
          ".log"),  // Cyrillic, > 100 bytes
  };
  ASSERT_GT(names[3].size(), 255u);
  ASSERT_GT(names[5].size(), 100u);
  std::vector<std::string> contents;
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    for (size_t i = 0; i < names.size(); ++i) {
      contents.push_back(Cat("content of entry ", i, "\n", std::string(i * 100, 'z')));
      auto sha = (*w)->AddBytes(names[i], contents.back(), kMtime);
      ASSERT_TRUE(sha.ok()) << sha.status();
      EXPECT_EQ(*sha, Sha256Of(contents.back(), dir)) << names[i];
    }
    ASSERT_TRUE((*w)->Close().ok());
  }

  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(entries[i].name, names[i]);
    EXPECT_EQ(entries[i].data, contents[i]) << names[i];
    EXPECT_EQ(entries[i].size, static_cast<int64_t>(contents[i].size()));
    EXPECT_EQ(entries[i].perm, 0640);
    EXPECT_EQ(entries[i].mtime, kMtime);
    EXPECT_EQ(entries[i].uid, 0);
    EXPECT_EQ(entries[i].type, AE_IFREG);
  }

  std::string listing;
  ASSERT_EQ(Sh(Cat("LC_ALL=C.UTF-8 tar -tzvf '", tgz, "'"), &listing), 0);
  for (const auto& name : names) EXPECT_THAT(listing, HasSubstr(name));
  EXPECT_THAT(listing, HasSubstr("-rw-r----- root/root"));
  EXPECT_THAT(listing, HasSubstr("2026-11-1"));  // the mtime given, in any zone
  std::string into = ExtractWithTar(tgz, dir);
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_EQ(ReadBytes(Cat(into, "/", names[i])), contents[i]) << names[i];
}

// Header fields as pax-restricted ustar: checked on the raw tar stream.
TEST(TarGzWriterTest, UstarHeaderFieldsAndRecordPadding) {
  TempDir dir;
  const std::string tgz = dir.File("h.tar.gz");
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->AddBytes("root/a.txt", "hello\n", kMtime).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  std::string tar = Gunzip(tgz);
  // One header, one data block, two zero blocks, padded to 10240.
  ASSERT_EQ(tar.size(), 10240u);
  std::string_view h(tar.data(), 512);
  EXPECT_EQ(h.substr(0, 11), std::string_view("root/a.txt\0", 11));
  EXPECT_EQ(h.substr(100, 8), std::string_view("000640 \0", 8));
  EXPECT_EQ(h.substr(108, 8), std::string_view("000000 \0", 8));
  EXPECT_EQ(h.substr(116, 8), std::string_view("000000 \0", 8));
  EXPECT_EQ(h.substr(124, 12), "00000000006 ");
  EXPECT_EQ(h.substr(136, 12), "15277303300 ");  // 1795000000 in octal
  EXPECT_EQ(h[156], '0');
  EXPECT_EQ(h.substr(257, 8), std::string_view("ustar\0"
                                               "00",
                                               8));
  EXPECT_EQ(h.substr(265, 5), std::string_view("root\0", 5));
  EXPECT_EQ(h.substr(297, 5), std::string_view("root\0", 5));
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i)
    sum += (i >= 148 && i < 156) ? unsigned{' '} : static_cast<unsigned char>(h[i]);
  EXPECT_EQ(std::stoul(std::string(h.substr(148, 6)), nullptr, 8), sum);
  EXPECT_EQ(tar.substr(512, 6), "hello\n");
  EXPECT_EQ(tar.find_first_not_of('\0', 512 + 6), std::string::npos);
  EXPECT_EQ(Sh(Cat("gzip -t '", tgz, "'")), 0);
}

TEST(TarGzWriterTest, EmptyAndBlockBoundarySizes) {
  TempDir dir;
  const std::string tgz = dir.File("sizes.tar.gz");
  std::mt19937 rng(42);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  };
  struct Case {
    std::string name;
    std::string data;
    bool from_file;
  };
  std::vector<Case> cases = {
      {"empty-file", "", true},           {"empty-bytes", "", false},
      {"b512", random_bytes(512), true},  {"b1537", random_bytes(512 * 3 + 1), true},
      {"b513", random_bytes(513), false}, {"b1024", random_bytes(1024), false},
  };
  uint64_t tar_content = 0;
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    for (const auto& c : cases) {
      absl::StatusOr<std::string> sha;
      uint64_t size = 12345;
      if (c.from_file) {
        WriteBytes(dir.File(c.name), c.data);
        sha = (*w)->AddFile(c.name, dir.File(c.name), kMtime, &size);
        EXPECT_EQ(size, c.data.size());
      } else {
        sha = (*w)->AddBytes(c.name, c.data, kMtime);
      }
      ASSERT_TRUE(sha.ok()) << sha.status();
      EXPECT_EQ(*sha, Sha256Of(c.data, dir)) << c.name;
      tar_content += 512 + (c.data.size() + 511) / 512 * 512;
    }
    ASSERT_TRUE((*w)->Close().ok());
  }
  std::string tar = Gunzip(tgz);
  EXPECT_EQ(tar.size() % 10240, 0u);
  EXPECT_GE(tar.size(), tar_content + 1024);
  EXPECT_EQ(tar.find_first_not_of('\0', tar_content), std::string::npos);

  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), cases.size());
  std::string into = ExtractWithTar(tgz, dir);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(entries[i].name, cases[i].name);
    EXPECT_EQ(entries[i].data, cases[i].data) << cases[i].name;
    EXPECT_EQ(ReadBytes(Cat(into, "/", cases[i].name)), cases[i].data) << cases[i].name;
  }
  EXPECT_EQ(Sh(Cat("gzip -t '", tgz, "'")), 0);
}

long PeakRssKib() {  // NOLINT(runtime/int)
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A multi-megabyte incompressible file is streamed: hashes agree with
// sha256sum, the size on disk is reported, and the peak memory does not grow
// by the size of the file.
TEST(TarGzWriterTest, StreamsLargeIncompressibleFile) {
  TempDir dir;
  const std::string src = dir.File("big.bin");
  constexpr size_t kBytes = 24u << 20;
  {
    std::ofstream out(src, std::ios::binary);
    std::mt19937_64 rng(7);
    std::vector<uint64_t> chunk(8192);
    for (size_t done = 0; done < kBytes; done += chunk.size() * 8) {
      for (auto& v : chunk) v = rng();
      out.write(reinterpret_cast<const char*>(chunk.data()),
                static_cast<std::streamsize>(chunk.size() * 8));
    }
  }
  const std::string tgz = dir.File("big.tar.gz");
  // Reset the peak to the current RSS (Linux clear_refs "5"), if allowed.
  bool peak_reset = false;
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    peak_reset = clear.good();
  }
  const long peak_before = PeakRssKib();  // NOLINT(runtime/int)
  uint64_t compressed = 0;
  std::string compressed_sha, sha;
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->AddBytes("first.txt", "before the big one\n", kMtime).ok());
    uint64_t size = 0;
    auto s = (*w)->AddFile("dir/big.bin", src, kMtime, &size);
    ASSERT_TRUE(s.ok()) << s.status();
    sha = *s;
    EXPECT_EQ(size, kBytes);
    ASSERT_TRUE((*w)->AddBytes("last.txt", "after\n", kMtime).ok());
    ASSERT_TRUE((*w)->Close().ok());
    compressed = (*w)->compressed_bytes();
    compressed_sha = (*w)->compressed_sha256();
  }
  const long peak_after = PeakRssKib();  // NOLINT(runtime/int)
  EXPECT_EQ(sha, Sha256Sum(src));
  struct stat st {};
  ASSERT_EQ(::stat(tgz.c_str(), &st), 0);
  EXPECT_EQ(compressed, static_cast<uint64_t>(st.st_size));
  EXPECT_GT(compressed, kBytes);  // incompressible: it was not skipped
  EXPECT_EQ(compressed_sha, Sha256Sum(tgz));
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~mask);  // created 0640
  EXPECT_EQ(Sh(Cat("gzip -t '", tgz, "'")), 0);

  std::string into = ExtractWithTar(tgz, dir);
  EXPECT_EQ(Sha256Sum(Cat(into, "/dir/big.bin")), sha);
  EXPECT_EQ(ReadBytes(Cat(into, "/last.txt")), "after\n");
  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(Sha256Of(entries[1].data, dir), sha);
  if (peak_reset && peak_before > 0) {
    EXPECT_LT(peak_after - peak_before, 8 * 1024)  // KiB; the file is 24 MiB
        << "peak RSS grew from " << peak_before << " to " << peak_after << " KiB";
  }
}

// A file that shrinks between the header (which declares its size) and the
// end of its content: DataLoss, the entry padded with zeros to the declared
// size, and the archive still well formed and usable. A sysfs file declares
// 4096 bytes and reads a few.
TEST(TarGzWriterTest, ShrinkingFileKeepsArchiveWellFormed) {
  const std::string sysfs = "/sys/devices/system/cpu/online";
  std::string real = ReadBytes(sysfs);
  struct stat sst {};
  if (real.empty() || ::stat(sysfs.c_str(), &sst) != 0 || sst.st_size <= 0 ||
      static_cast<size_t>(sst.st_size) <= real.size())
    GTEST_SKIP() << "no sysfs file whose declared size exceeds its content";
  TempDir dir;
  const std::string tgz = dir.File("shrink.tar.gz");
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    uint64_t size = 0;
    auto sha = (*w)->AddFile("cpu-online", sysfs, kMtime, &size);
    ASSERT_FALSE(sha.ok());
    EXPECT_EQ(sha.status().code(), absl::StatusCode::kDataLoss) << sha.status();
    EXPECT_THAT(sha.status().message(), HasSubstr(sysfs));
    EXPECT_THAT(sha.status().message(), HasSubstr("shrank"));
    auto next = (*w)->AddBytes("after.txt", "still writable\n", kMtime);
    ASSERT_TRUE(next.ok()) << next.status();
    ASSERT_TRUE((*w)->Close().ok());
  }
  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].size, sst.st_size);
  std::string padded = real + std::string(static_cast<size_t>(sst.st_size) - real.size(), '\0');
  EXPECT_EQ(entries[0].data, padded);
  EXPECT_EQ(entries[1].data, "still writable\n");
  std::string into = ExtractWithTar(tgz, dir);
  EXPECT_EQ(ReadBytes(Cat(into, "/after.txt")), "still writable\n");
}

// mtimes that 11 octal digits cannot hold travel in a pax mtime record.
TEST(TarGzWriterTest, OutOfRangeMtimeUsesPax) {
  TempDir dir;
  const std::string tgz = dir.File("t.tar.gz");
  const int64_t far = int64_t{1} << 34;  // year 2514
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->AddBytes("before-1970", "x", -86400).ok());
    ASSERT_TRUE((*w)->AddBytes("far-future", "y", far).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].mtime, -86400);
  EXPECT_EQ(entries[1].mtime, far);
  EXPECT_EQ(entries[1].data, "y");
  EXPECT_EQ(Sh(Cat("tar -tzf '", tgz, "' >/dev/null 2>&1")), 0);
  // Readers that know GNU base-256 would manage without; pax says it plainly.
  std::string tar = Gunzip(tgz);
  EXPECT_THAT(tar, HasSubstr("16 mtime=-86400\n"));
  EXPECT_THAT(tar, HasSubstr(Cat(Cat(" mtime=", far, "\n").size() + 2, " mtime=", far, "\n")));
}

TEST(TarGzWriterTest, OutputOnADirectoryIsAClearError) {
  TempDir dir;
  auto w = TarGzWriter::Create(dir.path());
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr(dir.path()));
  EXPECT_THAT(w.status().message(), HasSubstr("Is a directory"));
}

// /dev/full: every write fails with ENOSPC. The error names the output and
// the errno text, is ResourceExhausted (the bundle's "disk full"), and sticks.
TEST(TarGzWriterTest, DiskFullIsResourceExhaustedAndSticky) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  {
    // Enough incompressible data to fill the 64 KiB output buffer.
    std::mt19937 rng(1);
    std::string data(512 * 1024, '\0');
    for (auto& c : data) c = static_cast<char>(rng() & 0xff);
    auto w = TarGzWriter::Create("/dev/full");
    ASSERT_TRUE(w.ok()) << w.status();
    auto sha = (*w)->AddBytes("big", data, kMtime);
    ASSERT_FALSE(sha.ok());
    EXPECT_EQ(sha.status().code(), absl::StatusCode::kResourceExhausted) << sha.status();
    EXPECT_THAT(sha.status().message(), HasSubstr("/dev/full"));
    EXPECT_THAT(sha.status().message(), HasSubstr(std::strerror(ENOSPC)));
    // Unusable afterwards: the same error, no crash.
    auto again = (*w)->AddBytes("small", "x", kMtime);
    EXPECT_EQ(again.status(), sha.status());
    uint64_t size = 0;
    auto file = (*w)->AddFile("f", "/etc/hostname", kMtime, &size);
    EXPECT_EQ(file.status(), sha.status());
    EXPECT_EQ((*w)->Close(), sha.status());
  }
  {
    // Small content stays buffered: the failure shows at Close.
    auto w = TarGzWriter::Create("/dev/full");
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->AddBytes("small", "hello\n", kMtime).ok());
    absl::Status st = (*w)->Close();
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
    EXPECT_THAT(st.message(), HasSubstr("/dev/full"));
    EXPECT_EQ((*w)->Close(), st);
  }
}

TEST(TarGzWriterTest, UnusableAfterClose) {
  TempDir dir;
  auto w = MustCreate(dir.File("c.tar.gz"));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->AddBytes("a", "a", kMtime).ok());
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_TRUE((*w)->Close().ok());
  auto late = (*w)->AddBytes("b", "b", kMtime);
  ASSERT_FALSE(late.ok());
  EXPECT_THAT(late.status().message(), HasSubstr("closed"));
  // The archive on disk is unchanged by the attempt.
  auto entries = ReadWithLibarchive(dir.File("c.tar.gz"));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ((*w)->compressed_sha256(), Sha256Sum(dir.File("c.tar.gz")));
}

// A missing source file concerns its entry only (the builder skips it).
TEST(TarGzWriterTest, MissingSourceIsFailedPreconditionAndWriterGoesOn) {
  TempDir dir;
  const std::string tgz = dir.File("m.tar.gz");
  auto w = MustCreate(tgz);
  ASSERT_TRUE(w.ok());
  uint64_t size = 0;
  auto sha = (*w)->AddFile("gone", dir.File("does-not-exist"), kMtime, &size);
  EXPECT_EQ(sha.status().code(), absl::StatusCode::kFailedPrecondition) << sha.status();
  ASSERT_TRUE((*w)->AddBytes("here", "here\n", kMtime).ok());
  ASSERT_TRUE((*w)->Close().ok());
  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "here");
}

TEST(TarGzWriterTest, NonUtf8NameIsMarkedBinaryAndKeepsItsBytes) {
  TempDir dir;
  const std::string tgz = dir.File("cp1251.tar.gz");
  const std::string cp1251 = "logs/\xcf\xf0\xe8\xe5\xec.log";  // "Прием.log" in CP1251
  const std::string utf8 = "logs/\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb5\xd0\xbc.log";
  {
    auto w = MustCreate(tgz);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->AddBytes(cp1251, "a", 1700000000).ok());
    ASSERT_TRUE((*w)->AddBytes(utf8, "b", 1700000000).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  std::string tar = Gunzip(tgz);
  EXPECT_THAT(tar, HasSubstr("hdrcharset=BINARY\n"));
  // Only the CP1251 name is marked; the UTF-8 one is plain pax.
  size_t first = tar.find("hdrcharset=BINARY\n");
  EXPECT_EQ(tar.find("hdrcharset=BINARY\n", first + 1), std::string::npos);
  auto entries = ReadWithLibarchive(tgz);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, cp1251);
  EXPECT_EQ(entries[0].data, "a");
  EXPECT_EQ(entries[1].name, utf8);
  EXPECT_EQ(entries[1].data, "b");
  EXPECT_EQ(Sh(Cat("tar -tzf '", tgz, "' >/dev/null 2>&1")), 0);
}

}  // namespace
}  // namespace setdiag::agent::bundle

namespace setdiag::agent::bundle {
namespace {

// Names an extractor could be tricked by are refused, the archive goes on,
// and what was refused is not in it (tests/fuzz/corpus/tar_names holds the
// fuzzer's inputs for each).
TEST(TarGzWriterNames, UnsafeNamesAreRefusedAndTheArchiveStaysUsable) {
  testutil::TempDir dir;
  const std::string out = dir.File("names.tar.gz");
  auto w = TarGzWriter::Create(out);
  ASSERT_TRUE(w.ok()) << w.status();
  for (std::string bad :
       {std::string(""), std::string("/etc/cron.d/x"), std::string("../../../etc/cron.d/x"),
        std::string("a/../../b"), std::string("dir/"), std::string("a\0b", 3), std::string(".."),
        std::string("a//b")}) {
    auto sha = (*w)->AddBytes(bad, "x\n", 1'768'471'200);
    EXPECT_EQ(sha.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  ASSERT_TRUE((*w)->AddBytes("ok/..name/a..b/.", "x\n", 1'768'471'200).ok());
  ASSERT_TRUE((*w)->Close().ok());
  auto entries = setdiag::testing::ReadTarGz(out);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "ok/..name/a..b/.");
}

TEST(TarGzWriterNames, MemberPathOfResolvesLexically) {
  EXPECT_EQ(MemberPathOf("/var/log/set/a.log"), "var/log/set/a.log");
  EXPECT_EQ(MemberPathOf("/var/log/../../x"), "x");
  EXPECT_EQ(MemberPathOf("../../../etc/passwd"), "etc/passwd");
  EXPECT_EQ(MemberPathOf("a//./b/"), "a/b");
  EXPECT_EQ(MemberPathOf("/"), "");
  EXPECT_EQ(MemberPathOf(".."), "");
  for (const char* p : {"/var/log/../../x", "../a", "a/./b/", "//x//"})
    EXPECT_TRUE(CheckMemberName(MemberPathOf(p)).ok()) << p;
}

}  // namespace
}  // namespace setdiag::agent::bundle
