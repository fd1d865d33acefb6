#pragma once
// Random identifiers: message ids, session ids, kernel ids, HMAC keys.

#include <string>

namespace kh {

// 128 random bits as a canonical UUID string ("8-4-4-4-12" lower-case hex).
std::string new_uuid();

// n random bytes as 2n lower-case hex characters (for keys and tokens).
std::string random_hex(std::size_t n_bytes);

}  // namespace kh
