# CPackOptions.cmake -- read by cpack itself (CPACK_PROJECT_CONFIG_FILE), at package time.
#
# The package puts everything under /usr and /etc, and its unit names /usr/sbin and /etc. A
# build configured for another prefix (cmake's default is /usr/local) has a unit naming
# /usr/local/sbin and a config under /usr/local/etc; packaged as /usr it would be broken. So
# cpack -G DEB refuses it: scripts/package.sh makes a build configured for /usr and packages
# that. Other generators (a tarball of a /usr/local tree) are left alone.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_SA_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR
    "this build is configured for CMAKE_INSTALL_PREFIX=${CPACK_SA_INSTALL_PREFIX}; the Debian "
    "package needs /usr. Run scripts/package.sh (it configures its own build for /usr), or "
    "reconfigure this one with -DCMAKE_INSTALL_PREFIX=/usr.")
endif()
