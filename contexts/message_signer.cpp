#include "contexts/message_signer.hpp"

#include <stdexcept>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace kh::contexts {

// A keyed EVP_MAC context prepared once; every signature duplicates it, which skips the key
// schedule and keeps sign() safe to call from several threads at once.
struct message_signer::impl {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* keyed = nullptr;
  ~impl() {
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_free(mac);
  }
};

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

}  // namespace

message_signer::message_signer(std::string key) : key_(std::move(key)), impl_(std::make_unique<impl>()) {
  if (key_.empty()) return;
  impl_->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!impl_->mac) throw std::runtime_error("OpenSSL: HMAC not available");
  impl_->keyed = EVP_MAC_CTX_new(impl_->mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (!impl_->keyed ||
      EVP_MAC_init(impl_->keyed, reinterpret_cast<const unsigned char*>(key_.data()), key_.size(), params) != 1)
    throw std::runtime_error("OpenSSL: HMAC-SHA256 init failed");
}

message_signer::~message_signer() = default;

std::string message_signer::sign(std::string_view header, std::string_view parent, std::string_view metadata,
                                 std::string_view content) const {
  if (key_.empty()) return {};
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(impl_->keyed);
  if (!ctx) throw std::runtime_error("OpenSSL: EVP_MAC_CTX_dup failed");
  for (std::string_view part : {header, parent, metadata, content})
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(part.data()), part.size());
  unsigned char digest[EVP_MAX_MD_SIZE];
  std::size_t length = 0;
  const int ok = EVP_MAC_final(ctx, digest, &length, sizeof digest);
  EVP_MAC_CTX_free(ctx);
  if (ok != 1) throw std::runtime_error("OpenSSL: HMAC final failed");
  std::string out(length * 2, '0');
  for (std::size_t i = 0; i < length; ++i) {
    out[2 * i] = hex_digits[digest[i] >> 4];
    out[2 * i + 1] = hex_digits[digest[i] & 0xf];
  }
  return out;
}

bool message_signer::verify(std::string_view signature, std::string_view header, std::string_view parent,
                            std::string_view metadata, std::string_view content) const {
  if (key_.empty()) return true;
  const std::string expected = sign(header, parent, metadata, content);
  // Signatures are hex; accept upper-case senders by comparing lower-cased, still in constant time.
  if (signature.size() != expected.size()) return false;
  std::string lowered(signature);
  for (char& c : lowered)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  return CRYPTO_memcmp(lowered.data(), expected.data(), expected.size()) == 0;
}

}  // namespace kh::contexts
