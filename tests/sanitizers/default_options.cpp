// Default options of the sanitizer runtimes, linked into every executable of a -DKH_SANITIZE build.
// They reach each instrumented process however it was started: by ctest, by a test's posix_spawn,
// by the daemon starting kernel-host-python with a kernelspec's environment, or inside a sandbox whose
// environment is rebuilt from scratch. ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS and TSAN_OPTIONS from
// the environment still apply on top of these (scripts/test-sanitizers.sh sets a few).
// The suppression files (tests/sanitizers/*.supp) name third-party frames only; see their comments.

#ifndef KH_SANITIZER_DIR
#error "KH_SANITIZER_DIR (the folder of the suppression files) must be defined"
#endif

#define KH_SANITIZER_HOOK extern "C" __attribute__((visibility("default"), used)) const char*

// Python extension modules (numpy, ...) are loaded into kernel-host-python with dlopen: the ASan
// runtime is already first in the link order, the check only trips on the uninstrumented modules.
KH_SANITIZER_HOOK __asan_default_options() {
  return "verify_asan_link_order=0:detect_stack_use_after_return=0:strict_string_checks=0:"
         "check_initialization_order=1:detect_leaks=1:abort_on_error=0:exitcode=23";
}

KH_SANITIZER_HOOK __lsan_default_options() {
  return "suppressions=" KH_SANITIZER_DIR "/lsan.supp:print_suppressions=0";
}

KH_SANITIZER_HOOK __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1:suppressions=" KH_SANITIZER_DIR "/ubsan.supp";
}

KH_SANITIZER_HOOK __tsan_default_options() {
  return "suppressions=" KH_SANITIZER_DIR "/tsan.supp:second_deadlock_stack=1:history_size=4:exitcode=66";
}
