#pragma once
// sandbox_kernel_provisioner: the one adapter between contexts/ (which launches kernels through the
// provisioner interface) and sandbox_bridge/ (which runs processes inside a sandbox). A kernel of a
// sandbox runs inside it as the sandbox user, with the sandbox's limits and network, its ZeroMQ
// sockets on `ipc` files in the sandbox's private /tmp (the host reaches them through
// /proc/<sandbox init>/root, the kernel through its own path). Interrupts go to the kernel's own
// pid, never to the sandbox.

#include <filesystem>
#include <memory>
#include <string>

#include "contexts/provisioner.hpp"
#include "sandbox_bridge/sandbox_runtime.hpp"

namespace kh::host {

// The folder for kernel files as the kernel sees it inside every sandbox.
inline constexpr const char* kSandboxKernelDir = "/tmp/.k";  // short: see kernel_manager's ipc stem

// The host path of that folder for a running sandbox (short: ipc paths must fit 107 bytes).
result<std::filesystem::path> sandbox_kernel_dir(sandbox_bridge::sandbox_runtime& box);

std::unique_ptr<contexts::provisioner> make_sandbox_kernel_provisioner(std::shared_ptr<sandbox_bridge::sandbox_runtime> box);

}  // namespace kh::host
