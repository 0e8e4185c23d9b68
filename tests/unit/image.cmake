ferry_test(image_store_test SOURCES image_store_test.cc)
ferry_test(sha256_test SOURCES sha256_test.cc)
