# hardening.cmake -- Debian's hardening flags (dpkg-buildflags, hardening=+all) in every build:
# the test build runs the same stack protector, fortified libc calls and immediate binding as
# the package, so a fault they turn into an abort shows up in the tests first.
#
# Taken from dpkg-buildflags when it exists (so DEB_BUILD_MAINT_OPTIONS, DEB_CFLAGS_APPEND and
# friends still work as on any Debian build), else the same flags written out. Left out of
# what dpkg-buildflags gives: -O and -g (the build type decides those) and -ffile-prefix-map
# (it would name the directory cmake ran in, not the source tree).
option(SA_HARDENING "Compile and link with Debian's hardening flags (hardening=+all)" ON)
if(NOT SA_HARDENING)
  return()
endif()
include(CheckCCompilerFlag)
include(CheckPIESupported)

set(SA_HARDEN_CFLAGS -fstack-protector-strong -Wformat -Werror=format-security)
set(SA_HARDEN_CPPFLAGS -Wdate-time -D_FORTIFY_SOURCE=2)
set(SA_HARDEN_LDFLAGS -Wl,-z,relro -Wl,-z,now)
find_program(SA_DPKG_BUILDFLAGS dpkg-buildflags)
mark_as_advanced(SA_DPKG_BUILDFLAGS)
if(SA_DPKG_BUILDFLAGS)
  foreach(kind CFLAGS CPPFLAGS LDFLAGS)
    execute_process(
      COMMAND ${CMAKE_COMMAND} -E env DEB_BUILD_MAINT_OPTIONS=hardening=+all
              ${SA_DPKG_BUILDFLAGS} --get ${kind}
      OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "dpkg-buildflags --get ${kind} failed (${rc})")
    endif()
    separate_arguments(flags UNIX_COMMAND "${flags}")
    list(FILTER flags EXCLUDE REGEX "^-O|^-g|^-ffile-prefix-map=|^-fdebug-prefix-map=")
    set(SA_HARDEN_${kind} ${flags})
  endforeach()
endif()

# Debian 12's dpkg predates these two (later ones add them to hardening=+all); hardening-check
# looks for both. Only where the compiler knows them (-fcf-protection is x86's).
foreach(flag -fstack-clash-protection -fcf-protection)
  string(MAKE_C_IDENTIFIER "SA_CC_HAS${flag}" have)
  check_c_compiler_flag(${flag} ${have})
  if(${have} AND NOT flag IN_LIST SA_HARDEN_CFLAGS)
    list(APPEND SA_HARDEN_CFLAGS ${flag})
  endif()
endforeach()

# _FORTIFY_SOURCE needs optimisation (at -O0 glibc warns, and -Werror makes that fatal), and
# is left to the sanitizers in the ASan and fuzz builds: its __*_chk wrappers hide the very
# calls ASan intercepts, and ASan checks those bounds more closely anyway.
set(fortify_off "$<OR:$<CONFIG:Debug>,$<BOOL:${SA_SANITIZE}>,$<BOOL:${SA_FUZZ}>>")
list(TRANSFORM SA_HARDEN_CPPFLAGS REPLACE "^(-D_FORTIFY_SOURCE=.*)$"
     "$<$<NOT:${fortify_off}>:\\1>")

add_compile_options(${SA_HARDEN_CFLAGS} ${SA_HARDEN_CPPFLAGS})
add_link_options(${SA_HARDEN_LDFLAGS})
# Position-independent executables (-fPIE/-pie) even where the compiler does not default to it.
check_pie_supported()
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
