/* tests/abi/plugins/abi_stub.c - a dependency of the abi-missingdep test
 * plugin, deliberately kept off the loader's search path. */
int tsr_abi_stub_answer(void);
int tsr_abi_stub_answer(void) { return 42; }
