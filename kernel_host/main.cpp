#include "kernel_host/cli.hpp"

int main(int argc, char** argv) { return kh::host::run_cli(argc, argv); }
