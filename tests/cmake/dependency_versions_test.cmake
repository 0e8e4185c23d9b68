# cmake -P: the version gate (cmake/dependency_versions.cmake) against fake
# pkg-config modules, a fake dpkg-query and a fake Debian changelog.
# Each case configures the gate alone in a child cmake and checks that it
# passes or fails, and that a failure names the CVE.
cmake_minimum_required(VERSION 3.25)
set(gate ${CMAKE_CURRENT_LIST_DIR}/../../cmake/dependency_versions.cmake)
set(work ${CMAKE_CURRENT_BINARY_DIR}/dependency_versions_test)
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work}/pc ${work}/doc/libcapnp-dev ${work}/doc/libarchive-dev)
# The fake dpkg-query says every .pc file belongs to lib<name>-dev.
file(WRITE ${work}/dpkg-query "#!/bin/sh\nn=$(basename \"$2\" .pc)\necho \"lib\${n#lib}-dev:amd64: $2\"\n")
file(CHMOD ${work}/dpkg-query PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)
file(WRITE ${work}/run.cmake "include(${gate})\n")
set(failures 0)

function(write_changelog package text)
  file(WRITE ${work}/changelog "fake (1) unstable\n  * ${text}\n")
  execute_process(COMMAND gzip -c ${work}/changelog
                  OUTPUT_FILE ${work}/doc/${package}/changelog.Debian.gz)
endfunction()

# check(NAME zmq capnp archive CHANGELOG_CAPNP CHANGELOG_ARCHIVE PASS|FAIL [TEXT])
function(check name zmq capnp archive log_capnp log_archive expect)
  foreach(m libzmq:${zmq} capnp:${capnp} libarchive:${archive})
    string(REPLACE ":" ";" mv ${m})
    list(GET mv 0 mod)
    list(GET mv 1 ver)
    file(WRITE ${work}/pc/${mod}.pc "Name: ${mod}\nDescription: fake\nVersion: ${ver}\nLibs:\nCflags:\n")
  endforeach()
  write_changelog(libcapnp-dev "${log_capnp}")
  write_changelog(libarchive-dev "${log_archive}")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env PKG_CONFIG_LIBDIR=${work}/pc PKG_CONFIG_PATH=
            ${CMAKE_COMMAND} -DFERRY_DPKG_QUERY=${work}/dpkg-query
            -DFERRY_DEBIAN_DOC_DIR=${work}/doc -P ${work}/run.cmake
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(expect STREQUAL "PASS" AND NOT rc EQUAL 0)
    message(SEND_ERROR "${name}: refused, should pass:\n${out}")
  elseif(expect STREQUAL "FAIL" AND rc EQUAL 0)
    message(SEND_ERROR "${name}: passed, should be refused")
  elseif(expect STREQUAL "FAIL" AND ARGC GREATER 7 AND NOT out MATCHES "${ARGV7}")
    message(SEND_ERROR "${name}: refusal does not say '${ARGV7}':\n${out}")
  else()
    message(STATUS "ok: ${name}")
  endif()
endfunction()

check("Debian 12" 4.3.4 0.9.2 3.6.2 "" "" PASS)
check("upstream fixes" 4.3.3 0.10.3 3.6.0 "" "" PASS)
check("other fixed Cap'n Proto branches" 4.3.5 0.8.1 3.7.2 "" "" PASS)
check("Cap'n Proto 0.7.1" 4.3.5 0.7.1 3.7.2 "" "" PASS)
check("Cap'n Proto 1.0.1" 4.3.5 1.0.1 3.7.2 "" "" PASS)
check("libzmq 4.3.2" 4.3.2 0.10.3 3.6.0 "" "" FAIL "CVE-2020-15166")
check("Cap'n Proto 0.10.2" 4.3.4 0.10.2 3.6.0 "" "" FAIL "CVE-2022-46149")
check("Cap'n Proto 0.9.1" 4.3.4 0.9.1 3.6.0 "" "" FAIL "CVE-2022-46149")
check("Cap'n Proto 0.7.0" 4.3.4 0.7.0 3.6.0 "" "" FAIL "CVE-2022-46149")
check("Cap'n Proto 0.6.1" 4.3.4 0.6.1 3.6.0 "" "" FAIL "CVE-2022-46149")
check("libarchive 3.5.2" 4.3.4 0.10.3 3.5.2 "" "" FAIL "CVE-2021-23177")
check("Cap'n Proto 0.9.1 patched by Debian" 4.3.4 0.9.1 3.6.0 "Fix CVE-2022-46149" "" PASS)
check("libarchive 3.4.3 patched by Debian" 4.3.4 0.9.2 3.4.3
      "" "Fix CVE-2021-23177 and CVE-2021-31566" PASS)
check("libarchive 3.4.3 with one of two fixes" 4.3.4 0.9.2 3.4.3
      "" "Fix CVE-2021-23177" FAIL "CVE-2021-31566")
check("Cap'n Proto changelog naming another CVE" 4.3.4 0.9.1 3.6.0 "Fix CVE-2017-7892" ""
      FAIL "CVE-2022-46149")
