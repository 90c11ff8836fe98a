#!/bin/sh
# Installs weir-cni and its conflist on the host; the DaemonSet's install-cni
# init container runs this from the weir image. The plugin is executed by the
# container runtime on the host, outside any container, so it takes its own
# Node.js runtime and code along (to /opt/weir/cni-VERSION on the host), and
# /opt/cni/bin/weir-cni is a small shell wrapper around them. Every file is
# written beside its target and renamed over it, so a runtime calling the
# plugin during an upgrade sees the old version or the new one, never half.
set -eu

APP=${WEIR_APP:-/opt/weir}                        # this image's install
HOST_CNI_BIN=${HOST_CNI_BIN:-/host/opt/cni/bin}   # host /opt/cni/bin
HOST_CNI_CONF=${HOST_CNI_CONF:-/host/etc/cni/net.d}
HOST_WEIR=${HOST_WEIR:-/host/opt/weir}            # host /opt/weir
HOST_WEIR_PATH=${HOST_WEIR_PATH:-/opt/weir}       # the same folder as the host sees it
CNI_CONFLIST=${CNI_CONFLIST:-10-weir.conflist}

conflist="$APP/manifests/$CNI_CONFLIST"
[ -f "$conflist" ] || { echo "install-cni: $conflist is not in the image" >&2; exit 1; }
node=$(command -v node)
version=$("$node" -p "require('$APP/package.json').version")
dir="cni-$version-$(date +%s)-$$"

# Only what the plugin imports: its compiled code, package.json (ESM) and msgpackr.
mkdir -p "$HOST_WEIR/$dir.tmp/dist/control" "$HOST_WEIR/$dir.tmp/bin" "$HOST_WEIR/$dir.tmp/node_modules"
cp "$node" "$HOST_WEIR/$dir.tmp/node"
cp "$APP/package.json" "$HOST_WEIR/$dir.tmp/"
cp "$APP/bin/weir-cni" "$HOST_WEIR/$dir.tmp/bin/"
cp -R "$APP/dist/control/cni" "$HOST_WEIR/$dir.tmp/dist/control/"
cp -R "$APP/node_modules/msgpackr" "$HOST_WEIR/$dir.tmp/node_modules/"
mv "$HOST_WEIR/$dir.tmp" "$HOST_WEIR/$dir"

mkdir -p "$HOST_CNI_BIN" "$HOST_CNI_CONF"
cat > "$HOST_CNI_BIN/.weir-cni.tmp" <<WRAPPER
#!/bin/sh
# Installed by weir's install-cni ($version); runs weir-cni with its own Node.js.
exec $HOST_WEIR_PATH/$dir/node $HOST_WEIR_PATH/$dir/bin/weir-cni "\$@"
WRAPPER
chmod 0755 "$HOST_CNI_BIN/.weir-cni.tmp"
mv -f "$HOST_CNI_BIN/.weir-cni.tmp" "$HOST_CNI_BIN/weir-cni"

cp "$conflist" "$HOST_CNI_CONF/.$CNI_CONFLIST.tmp"
mv -f "$HOST_CNI_CONF/.$CNI_CONFLIST.tmp" "$HOST_CNI_CONF/$CNI_CONFLIST"

# Older copies are no longer referenced by the wrapper.
for old in "$HOST_WEIR"/cni-*; do
  [ "$old" = "$HOST_WEIR/$dir" ] || rm -rf "$old"
done
echo "install-cni: weir-cni $version -> $HOST_CNI_BIN/weir-cni, $CNI_CONFLIST -> $HOST_CNI_CONF"
