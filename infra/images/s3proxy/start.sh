#!/bin/sh
# Writes s3proxy's properties from the environment (as infra/stack.sh does for the local one), makes
# the bucket (a folder, with the filesystem backend) and runs s3proxy in the foreground.
set -eu
DATA=/var/lib/s3proxy/data
mkdir -p "$DATA/${S3_BUCKET:-hashrelay}"
umask 077
cat >/tmp/s3proxy.properties <<PROPS
s3proxy.endpoint=http://0.0.0.0:8080
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=${S3PROXY_IDENTITY:?}
s3proxy.credential=${S3PROXY_CREDENTIAL:?}
s3proxy.ignore-unknown-headers=true
jclouds.provider=filesystem-nio2
jclouds.identity=local
jclouds.credential=local
jclouds.filesystem.basedir=$DATA
PROPS
exec java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlogback.configurationFile=/opt/s3proxy/logback.xml \
  -cp '/opt/s3proxy/lib/*' org.gaul.s3proxy.Main --properties /tmp/s3proxy.properties
