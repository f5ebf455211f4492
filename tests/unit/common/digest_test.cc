#include "common/digest.h"

#include <gtest/gtest.h>

#include <string>

#include "common/files.h"

namespace setdiag {
namespace {

// FIPS 180-2 test vectors.
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(DigestTest, HexIsLowercaseTwoDigitsPerByte) {
  EXPECT_EQ(Hex(std::string("\x00\x0f\xa0\xff", 4)), "000fa0ff");
  EXPECT_EQ(Hex(""), "");
}

TEST(DigestTest, Sha256InPiecesMatchesTheVectorAndTheOneShot) {
  Sha256 sha;
  EXPECT_EQ(sha.HexDigest(), kEmpty);
  sha.Update("a");
  sha.Update("bc");
  EXPECT_EQ(sha.HexDigest(), kAbc);
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
}

// The collector compares the hash of what it holds while a transfer goes
// on, so reading the digest must not end the hash.
TEST(DigestTest, ReadingTheDigestMidwayDoesNotDisturbTheHash) {
  Sha256 whole, pieces;
  whole.Update("abcdef");
  pieces.Update("abc");
  EXPECT_EQ(pieces.HexDigest(), kAbc);
  pieces.Update("def");
  EXPECT_EQ(pieces.HexDigest(), whole.HexDigest());
  EXPECT_EQ(pieces.HexDigest(), Sha256Hex("abcdef"));
}

TEST(DigestTest, Base64RoundTripsAndRefusesMalformedText) {
  EXPECT_EQ(Base64("hello"), "aGVsbG8=");
  EXPECT_EQ(Unbase64("aGVsbG8="), "hello");
  EXPECT_EQ(Unbase64(Base64(std::string("\x00\xff\x10", 3))), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(Unbase64("aGVsbG8"), std::nullopt);  // not a multiple of 4
  EXPECT_EQ(Unbase64("a*==").has_value(), false);
}

}  // namespace
}  // namespace setdiag
