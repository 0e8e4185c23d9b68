ferry_test(compat_test SOURCES compat_test.cc)
