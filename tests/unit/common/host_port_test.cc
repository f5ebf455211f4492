// common/host_port.h: the one host:port parser, with each caller's rules.

#include "common/host_port.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace setdiag {
namespace {

using ::testing::HasSubstr;

TEST(HostPortTest, ParsesNamesAddressesAndBracketedIpv6) {
  auto a = ParseHostPort("collector.example.com:7443");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "collector.example.com");
  EXPECT_EQ(a->port, 7443);
  auto b = ParseHostPort("[2001:db8::1]:443", {.host = HostForm::kIpLiteral});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host, "2001:db8::1");
  EXPECT_EQ(b->ToString(), "[2001:db8::1]:443");
  EXPECT_EQ(ParseHostPort("10.0.0.5:80")->ToString(), "10.0.0.5:80");
}

TEST(HostPortTest, RefusesWhatIsNotHostColonPortAndSaysWhy) {
  EXPECT_THAT(ParseHostPort("7443").status().message(), HasSubstr("'7443' is not host:port"));
  EXPECT_THAT(ParseHostPort(":7443").status().message(), HasSubstr("is not host:port"));
  EXPECT_THAT(ParseHostPort("::1:7443").status().message(), HasSubstr("needs brackets"));
  for (const char* bad : {"h:", "h:x", "h:65536", "h:-1", "h:+80", "h:80 ", "h:123456"}) {
    EXPECT_THAT(ParseHostPort(bad).status().message(), HasSubstr("has no valid port (1..65535)"))
        << bad;
  }
}

TEST(HostPortTest, PortZeroOnlyWhenAllowed) {
  EXPECT_FALSE(ParseHostPort("127.0.0.1:0").ok());
  auto any = ParseHostPort("127.0.0.1:0", {.allow_port_zero = true});
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->port, 0);
  EXPECT_EQ(ParseHostPort("127.0.0.1:65535")->port, 65535);
}

TEST(HostPortTest, HostFormsAreEnforced) {
  const HostPortRules ipv4{.host = HostForm::kIpv4};
  EXPECT_TRUE(ParseHostPort("0.0.0.0:7555", ipv4).ok());
  EXPECT_THAT(ParseHostPort("999.1.1.1:7555", ipv4).status().message(),
              HasSubstr("'999.1.1.1' is not an IPv4 address (four numbers 0..255)"));
  EXPECT_FALSE(ParseHostPort("localhost:7555", ipv4).ok());
  EXPECT_FALSE(ParseHostPort("[::1]:7555", ipv4).ok());
  const HostPortRules literal{.host = HostForm::kIpLiteral};
  EXPECT_TRUE(ParseHostPort("localhost:8088", literal).ok());
  EXPECT_TRUE(ParseHostPort("[::1]:8088", literal).ok());
  EXPECT_THAT(ParseHostPort("collector.local:8088", literal).status().message(),
              HasSubstr("the host must be an IP address or localhost"));
}

TEST(HostPortTest, PortsAndLoopback) {
  uint16_t p = 0;
  EXPECT_TRUE(ParsePort("1", false, &p));
  EXPECT_EQ(p, 1);
  EXPECT_FALSE(ParsePort("0", false, &p));
  EXPECT_TRUE(ParsePort("0", true, &p));
  EXPECT_FALSE(ParsePort("", true, &p));
  EXPECT_FALSE(ParsePort("00080x", true, &p));
  EXPECT_TRUE(IsLoopbackHost("127.10.0.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("127.example.com"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_TRUE(IsIpv4Literal("255.255.255.255"));
  EXPECT_FALSE(IsIpv4Literal("256.1.1.1"));
}

}  // namespace
}  // namespace setdiag
