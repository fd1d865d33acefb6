#pragma once
// HMAC-SHA256 signing of Jupyter messages with OpenSSL, and constant-time verification.

#include <memory>
#include <string>
#include <string_view>

namespace kh::contexts {

class message_signer {
 public:
  // An empty key disables signing (signature "" and no check), as the protocol says.
  // Only "hmac-sha256" is supported; make_message_signer rejects other schemes.
  explicit message_signer(std::string key);
  ~message_signer();
  message_signer(const message_signer&) = delete;
  message_signer& operator=(const message_signer&) = delete;

  // Lower-case hex HMAC over header, parent_header, metadata and content, in that order.
  // Thread-safe.
  std::string sign(std::string_view header, std::string_view parent, std::string_view metadata,
                   std::string_view content) const;

  // Constant-time comparison of a received signature with the expected one.
  bool verify(std::string_view signature, std::string_view header, std::string_view parent,
              std::string_view metadata, std::string_view content) const;

  bool enabled() const noexcept { return !key_.empty(); }

 private:
  struct impl;
  std::string key_;
  std::unique_ptr<impl> impl_;
};

}  // namespace kh::contexts
