// LeakSanitizer suppressions for kernel-host-python only (linked into it in -DKH_SANITIZE builds).
// xeus signs every message with OpenSSL's HMAC (xeus::openssl_xauthentication::sign_impl), whose
// EVP_MD_fetch caches method objects that OpenSSL frees only in its cleanup, which the kernel's
// std::exit skips while Python is alive. libcrypto has no frame pointers, so the report's stack
// ends inside libcrypto and cannot name the xeus frame: the module is the only handle. The daemon
// does not get this suppression: there our own message_signer is libcrypto's caller.
extern "C" __attribute__((visibility("default"), used)) const char* __lsan_default_suppressions() {
  return "leak:libcrypto.so.3\n";
}
