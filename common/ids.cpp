#include "common/ids.hpp"

#include <array>
#include <cstdint>
#include <stdexcept>

#include <openssl/rand.h>

namespace kh {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

void fill_random(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}

}  // namespace

std::string random_hex(std::size_t n_bytes) {
  std::string out(n_bytes * 2, '0');
  std::array<unsigned char, 64> buffer{};
  for (std::size_t done = 0; done < n_bytes;) {
    const std::size_t chunk = std::min(buffer.size(), n_bytes - done);
    fill_random(buffer.data(), chunk);
    for (std::size_t i = 0; i < chunk; ++i) {
      out[2 * (done + i)] = hex_digits[buffer[i] >> 4];
      out[2 * (done + i) + 1] = hex_digits[buffer[i] & 0xf];
    }
    done += chunk;
  }
  return out;
}

std::string new_uuid() {
  std::array<unsigned char, 16> bytes{};
  fill_random(bytes.data(), bytes.size());
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += hex_digits[bytes[i] >> 4];
    out += hex_digits[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace kh
