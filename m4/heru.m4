# heru.m4: project macros.

# HERU_REQUIRE_PKG(VAR, MODULES, DEBIAN-PACKAGE)
# pkg-config check whose failure names the Debian package to install.
AC_DEFUN([HERU_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 not found: install the Debian package '$3' (apt-get install $3)])])
])

# HERU_REQUIRE_WSLAY: wslay ships a pkg-config file on some distributions only
# (Debian 12's libwslay-dev has none), so fall back to header + library checks.
AC_DEFUN([HERU_REQUIRE_WSLAY], [
  PKG_CHECK_MODULES([WSLAY], [libwslay >= 1.1], [], [
    AC_CHECK_HEADER([wslay/wslay.h], [],
      [AC_MSG_ERROR([wslay not found: install the Debian package 'libwslay-dev' (apt-get install libwslay-dev)])])
    AC_CHECK_LIB([wslay], [wslay_event_context_server_init], [WSLAY_LIBS=-lwslay],
      [AC_MSG_ERROR([wslay library not found: install the Debian package 'libwslay-dev' (apt-get install libwslay-dev)])])
    WSLAY_CFLAGS=
  ])
  AC_SUBST([WSLAY_CFLAGS])
  AC_SUBST([WSLAY_LIBS])
])

# AX_PTHREAD_SIMPLE: -pthread for gcc and clang on Linux.
AC_DEFUN([AX_PTHREAD_SIMPLE], [
  PTHREAD_CFLAGS=-pthread
  PTHREAD_LIBS=-pthread
  AC_SUBST([PTHREAD_CFLAGS])
  AC_SUBST([PTHREAD_LIBS])
])

# HERU_CHECK_CUDA: --with-cuda=auto|yes|no [default auto]. Sets NVCC, CUDA_CFLAGS,
# CUDA_LIBS, NVCCFLAGS and the conditional HAVE_CUDA. 'yes' fails when nvcc, cuBLASLt
# or cuDNN is missing; 'auto' quietly builds without CUDA then.
AC_DEFUN([HERU_CHECK_CUDA], [
  AC_ARG_WITH([cuda],
    [AS_HELP_STRING([--with-cuda=auto|yes|no|DIR], [build the CUDA kernels and GPU plugins (default auto: when nvcc is found)])],
    [], [with_cuda=auto])
  heru_have_cuda=no
  NVCC=
  CUDA_CFLAGS=
  CUDA_LIBS=
  AS_CASE([$with_cuda],
    [no], [],
    [yes|auto], [cuda_home=${CUDA_HOME:-/usr/local/cuda}],
    [cuda_home=$with_cuda])
  AS_IF([test "x$with_cuda" != xno], [
    AC_PATH_PROG([NVCC], [nvcc], [], [$cuda_home/bin:$PATH])
    AS_IF([test -n "$NVCC"], [
      cuda_home=`AS_DIRNAME(["$NVCC"])`/..
      save_CPPFLAGS=$CPPFLAGS
      CPPFLAGS="$CPPFLAGS -I$cuda_home/include"
      heru_cuda_ok=yes
      AC_CHECK_HEADER([cublasLt.h], [], [heru_cuda_ok=no])
      AC_CHECK_HEADER([cudnn.h], [], [heru_cuda_ok=no])
      CPPFLAGS=$save_CPPFLAGS
      AS_IF([test "x$heru_cuda_ok" = xyes], [
        heru_have_cuda=yes
        CUDA_CFLAGS="-I$cuda_home/include"
        CUDA_LIBS="-L$cuda_home/lib64 -Wl,-rpath,$cuda_home/lib64 -lcudnn -lcublasLt -lcublas -lcudart"
      ])
    ])
    AS_IF([test "x$with_cuda" = xyes && test "x$heru_have_cuda" != xyes],
      [AC_MSG_ERROR([--with-cuda=yes but nvcc, cublasLt.h or cudnn.h was not found (install the CUDA toolkit and cuDNN 9, or set CUDA_HOME)])])
  ])
  AC_ARG_VAR([NVCCFLAGS], [extra flags for nvcc])
  AS_IF([test -z "$NVCCFLAGS"], [NVCCFLAGS="-O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90 -Xcompiler -fPIC"])
  AC_SUBST([NVCC])
  AC_SUBST([CUDA_CFLAGS])
  AC_SUBST([CUDA_LIBS])
  AM_CONDITIONAL([HAVE_CUDA], [test "x$heru_have_cuda" = xyes])
  AS_IF([test "x$heru_have_cuda" = xyes], [AC_DEFINE([HERU_HAVE_CUDA], [1], [CUDA kernels are built])])
])
