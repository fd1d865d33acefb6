// kernel-host command line (filled in as the CLI lands).
int main() { return 0; }
