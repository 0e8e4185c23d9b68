ferry_test(image_store_test SOURCES image_store_test.cc LIBS PkgConfig::LIBARCHIVE)
ferry_test(layer_apply_test SOURCES layer_apply_test.cc LIBS PkgConfig::LIBARCHIVE)
ferry_test(sha256_test SOURCES sha256_test.cc)
