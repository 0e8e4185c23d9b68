ferry_test(tree_archive_test SOURCES tree_archive_test.cc LIBS PkgConfig::LIBARCHIVE)
