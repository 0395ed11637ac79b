#!/bin/sh
# Run in the build stage of docker/{adapter,enforcer}/Dockerfile: writes to
# /out the root of a shell-less runtime image in Choreo Connect's layout: the
# C libraries the binaries link, the CA certificates, the wso2 user
# (10500:10500) and its folders.
set -eu
arch="$(uname -m)-linux-gnu"
mkdir -p /out/etc/ssl/certs /out/tmp /out/lib/"$arch" \
  /out/home/wso2/conf /out/home/wso2/security/keystore /out/home/wso2/security/truststore \
  /out/home/wso2/artifacts/apis /out/home/wso2/data /out/home/wso2/logs
for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do cp -L /lib/"$arch"/"$lib" /out/lib/"$arch"/; done
for ld in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do
  if [ -e "$ld" ]; then mkdir -p /out"$(dirname "$ld")"; cp -L "$ld" /out"$ld"; fi
done
cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/
printf 'root:x:0:0:root:/root:/sbin/nologin\nwso2:x:10500:10500:wso2:/home/wso2:/sbin/nologin\n' >/out/etc/passwd
printf 'root:x:0:\nwso2:x:10500:\n' >/out/etc/group
chmod 1777 /out/tmp
chown -R 10500:10500 /out/home/wso2
