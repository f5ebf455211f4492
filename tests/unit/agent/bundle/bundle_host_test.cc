// Host facts for bundles, parsed from /proc text; and external commands cut
// by their timeout.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "agent/bundle/collect_host.h"

namespace setdiag::agent::bundle {
namespace {

using ::testing::HasSubstr;

TEST(HostParseTest, ListeningTcpSockets) {
  const char* tcp =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
      "inode\n"
      "   0: 00000000:1F9A 00000000:0000 0A 00000000:00000000 00:00000000 00000000   995        0 "
      "41234 1 0 100 0 0 10 0\n"
      "   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000    26        0 "
      "41235 1 0 100 0 0 10 0\n"
      "   2: 0500000A:D2F0 0600000A:1F9A 01 00000000:00000000 00:00000000 00000000   995        0 "
      "51236 1 0 20 4 30 10 -1\n";
  auto v4 = ParseProcNetTcp(tcp, false);
  ASSERT_EQ(v4.size(), 2u);  // the established connection is not listening
  EXPECT_EQ(v4[0].address, "0.0.0.0");
  EXPECT_EQ(v4[0].port, 8090);
  EXPECT_EQ(v4[0].uid, 995);
  EXPECT_EQ(v4[0].inode, 41234u);
  EXPECT_EQ(v4[1].address, "127.0.0.1");
  EXPECT_EQ(v4[1].port, 5432);

  const char* tcp6 =
      "  sl  local_address                         remote_address                        st "
      "tx_queue rx_queue tr "
      "tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000000000000:1F9B 00000000000000000000000000000000:0000 0A "
      "00000000:00000000 "
      "00:00000000 00000000     0        0 61237 1 0 100 0 0 10 0\n"
      "   1: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A "
      "00000000:00000000 "
      "00:00000000 00000000    26        0 61238 1 0 100 0 0 10 0\n";
  auto v6 = ParseProcNetTcp(tcp6, true);
  ASSERT_EQ(v6.size(), 2u);
  EXPECT_EQ(v6[0].address, "::");
  EXPECT_EQ(v6[0].port, 8091);
  EXPECT_EQ(v6[1].address, "::1");
}

TEST(HostParseTest, MemoryLoadUptime) {
  auto mem = ParseMeminfo(
      "MemTotal:        8041424 kB\nMemAvailable:    2345678 kB\nHugePages_Total:       0\n");
  EXPECT_EQ(mem["MemTotal"], 8041424);
  EXPECT_EQ(mem["MemAvailable"], 2345678);
  EXPECT_EQ(mem["HugePages_Total"], 0);
  auto load = ParseLoadavg("0.52 0.58 0.59 2/1024 12345\n");
  EXPECT_DOUBLE_EQ(load["load1"].get<double>(), 0.52);
  EXPECT_DOUBLE_EQ(load["load15"].get<double>(), 0.59);
  EXPECT_EQ(load["runnable"], 2);
  EXPECT_EQ(load["threads"], 1024);
  EXPECT_EQ(ParseUptime("350735.47 234388.90\n"), 350735.47);
  EXPECT_FALSE(ParseUptime("").has_value());
}

TEST(HostParseTest, MountsOfRealFileSystems) {
  auto mounts = ParseMounts(
      "proc /proc proc rw,nosuid 0 0\n"
      "/dev/mapper/centos-root / xfs rw,relatime 0 0\n"
      "tmpfs /run tmpfs rw 0 0\n"
      "//nas/erp\\040exchange /mnt/erp\\040exchange cifs ro,relatime 0 0\n"
      "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].mount_point, "/");
  EXPECT_EQ(mounts[0].fs_type, "xfs");
  EXPECT_EQ(mounts[1].mount_point, "/mnt/erp exchange");
  EXPECT_EQ(mounts[1].device, "//nas/erp exchange");
  EXPECT_EQ(mounts[1].options, "ro,relatime");
}

TEST(HostParseTest, ChronyOffsetSign) {
  const char* fast =
      "Reference ID    : C0A80001 (192.168.0.1)\n"
      "Stratum         : 3\n"
      "Ref time (UTC)  : Thu Nov 18 10:00:00 2026\n"
      "System time     : 0.000123456 seconds fast of NTP time\n"
      "Last offset     : -0.000010000 seconds\n"
      "Leap status     : Normal\n";
  auto t = ParseChronyTracking(fast);
  EXPECT_DOUBLE_EQ(t["offset_s"].get<double>(), 0.000123456);
  EXPECT_EQ(t["stratum"], 3);
  EXPECT_EQ(t["leap_status"], "Normal");
  EXPECT_EQ(t["reference"], "C0A80001 (192.168.0.1)");
  auto slow = ParseChronyTracking("System time     : 1.500000000 seconds slow of NTP time\n");
  EXPECT_DOUBLE_EQ(slow["offset_s"].get<double>(), -1.5);
  EXPECT_FALSE(ParseChronyTracking("506 Cannot talk to daemon\n").contains("offset_s"));
}

TEST(RunCommandTest, OutputAndExitCode) {
  auto r = RunCommand({"sh", "-c", "echo hello; echo oops >&2; exit 3"}, 5000);
  EXPECT_TRUE(r.started);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.output, HasSubstr("hello"));
  EXPECT_THAT(r.output, HasSubstr("oops"));
}

TEST(RunCommandTest, MissingToolIsNotStarted) {
  auto r = RunCommand({"setdiag-no-such-tool-xyz"}, 1000);
  EXPECT_FALSE(r.started);
  EXPECT_THAT(r.error, HasSubstr("not installed"));
}

TEST(RunCommandTest, AHangingToolIsKilledAtItsTimeout) {
  auto started = std::chrono::steady_clock::now();
  // The grandchild keeps the pipe open too: the whole process group goes.
  auto r = RunCommand({"sh", "-c", "sleep 30 & sleep 30"}, 200);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(took, std::chrono::seconds(3));
}

}  // namespace
}  // namespace setdiag::agent::bundle
