# The version gate (issue 14, item 9): configure fails on a ZeroMQ, Cap'n
# Proto or libarchive with a known bug that a peer can reach. ferry decodes
# Cap'n Proto messages and ZeroMQ frames from other hosts and unpacks tar
# archives they send, so each of these libraries meets hostile input.
#
# The rule, per library: the upstream version (pkg-config's modversion) must
# be a release that carries the fix. Distributions backport fixes without
# changing the upstream version, so a version below that passes only when the
# library's .pc file belongs to a Debian package whose changelog
# (/usr/share/doc/PKG/changelog.Debian.gz) names every CVE in question:
# Debian's security uploads name the CVEs they fix. ZeroMQ gets no such
# exception: issue 14 asks for 4.3.3, which every supported distribution has.
#
# Found on Debian 12 (bookworm): libzmq 4.3.4, capnp 0.9.2 (Debian's 0.9.2-2,
# whose changelog reads "Imported Upstream version 0.9.2 for CVE-2022-46149"),
# libarchive 3.6.2. All three pass on their upstream versions.

find_package(PkgConfig REQUIRED)
# Where Debian keeps changelogs; tests/cmake/dependency_versions_test.cmake
# points it (and FERRY_DPKG_QUERY) elsewhere.
set(FERRY_DEBIAN_DOC_DIR /usr/share/doc CACHE PATH "Debian's package documentation")
mark_as_advanced(FERRY_DEBIAN_DOC_DIR)

# Sets `out` to TRUE when the .pc file of pkg-config module `module` belongs
# to a Debian package whose changelog names every CVE listed after `out`.
function(ferry_debian_changelog_names_fix module out)
  set(${out} FALSE PARENT_SCOPE)
  pkg_get_variable(pc_dir ${module} pcfiledir)
  find_program(FERRY_DPKG_QUERY dpkg-query)
  if(NOT pc_dir OR NOT FERRY_DPKG_QUERY)
    return()
  endif()
  execute_process(COMMAND ${FERRY_DPKG_QUERY} -S "${pc_dir}/${module}.pc"
                  OUTPUT_VARIABLE owner RESULT_VARIABLE rc ERROR_QUIET)
  # "libcapnp-dev:amd64: /usr/lib/x86_64-linux-gnu/pkgconfig/capnp.pc"
  if(NOT rc EQUAL 0 OR NOT owner MATCHES "^([^:,]+)[:,]")
    return()
  endif()
  set(package ${CMAKE_MATCH_1})
  set(changelog "${FERRY_DEBIAN_DOC_DIR}/${package}/changelog.Debian.gz")
  if(NOT EXISTS "${changelog}")
    return()
  endif()
  execute_process(COMMAND gzip -dc "${changelog}" OUTPUT_VARIABLE text RESULT_VARIABLE rc
                  ERROR_QUIET)
  if(NOT rc EQUAL 0)
    return()
  endif()
  foreach(cve IN LISTS ARGN)
    string(FIND "${text}" "${cve}" at)
    if(at EQUAL -1)
      return()
    endif()
  endforeach()
  list(JOIN ARGN ", " cves)
  message(STATUS "${module}: Debian's ${package} names ${cves} in its changelog")
  set(${out} TRUE PARENT_SCOPE)
endfunction()

# ferry_require_fix(MODULE FIXED_IN v... [DEBIAN_BACKPORTS] WHY text CVES cve...)
# Fails configure unless pkg-config module MODULE is at least the last
# FIXED_IN release, or in the branch (same major.minor) of an earlier one and
# at least it. With DEBIAN_BACKPORTS an older version also passes by the
# Debian changelog rule above.
function(ferry_require_fix module)
  cmake_parse_arguments(F "DEBIAN_BACKPORTS" "WHY" "FIXED_IN;CVES" ${ARGN})
  pkg_check_modules(FERRY_VERSION_OF_${module} REQUIRED QUIET ${module})
  set(v ${FERRY_VERSION_OF_${module}_VERSION})
  list(JOIN F_CVES ", " cves)
  message(STATUS "${module} ${v}: must carry the fix for ${cves}")
  list(GET F_FIXED_IN -1 newest)
  if(v VERSION_GREATER_EQUAL newest)
    return()
  endif()
  foreach(fix IN LISTS F_FIXED_IN)
    string(REGEX REPLACE "\\.[0-9]+$" "" branch ${fix})
    string(REPLACE "." "\\." branch ${branch})
    if(v MATCHES "^${branch}\\.[0-9]+$" AND v VERSION_GREATER_EQUAL fix)
      return()
    endif()
  endforeach()
  set(how "Install a fixed release")
  if(F_DEBIAN_BACKPORTS)
    ferry_debian_changelog_names_fix(${module} backported ${F_CVES})
    if(backported)
      return()
    endif()
    set(how "${how} (an older Debian package passes if its changelog names ${cves})")
  endif()
  message(FATAL_ERROR "${module} ${v} lacks the fix for ${F_WHY}. ${how}.")
endfunction()

# libzmq 4.3.3 fixed CVE-2020-15166 (a CURVE peer that never completes the
# handshake makes the server allocate without bound) and the heap overflows
# later published as CVE-2021-20235 and CVE-2021-20237.
ferry_require_fix(libzmq FIXED_IN 4.3.3 CVES CVE-2020-15166
                  WHY "CVE-2020-15166 (and CVE-2021-20235/20237), fixed in libzmq 4.3.3")

# CVE-2022-46149 (out-of-bounds read through a list of pointers): the
# advisory (security-advisories/2022-11-30-0-pointer-list-bounds.md) lists
# the fixed releases 0.7.1, 0.8.1, 0.9.2 and 0.10.3, and every later release;
# 0.7.0 and before count as unfixed.
ferry_require_fix(capnp FIXED_IN 0.7.1 0.8.1 0.9.2 0.10.3 DEBIAN_BACKPORTS CVES CVE-2022-46149
                  WHY "CVE-2022-46149, fixed in Cap'n Proto 0.10.3 (and 0.9.2, 0.8.1, 0.7.1)")

# CVE-2021-23177 and CVE-2021-31566 (extracting a tar follows a symlink when
# setting ACLs or file flags): fixed in libarchive 3.6.0.
ferry_require_fix(libarchive FIXED_IN 3.6.0 DEBIAN_BACKPORTS CVES CVE-2021-23177 CVE-2021-31566
                  WHY "CVE-2021-23177 and CVE-2021-31566, fixed in libarchive 3.6.0")
