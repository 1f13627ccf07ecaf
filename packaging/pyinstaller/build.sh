#!/usr/bin/env bash
# Build the one-folder Linux app and (with --install) install it for the current user.
#   packaging/pyinstaller/build.sh            -> dist/mocap/mocap-app
#   packaging/pyinstaller/build.sh --install  -> ~/.local/opt/mocap, ~/.local/bin/mocap-app, menu entry + icon
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"
python -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller "$HERE/mocap.spec"
echo "built $REPO/dist/mocap/mocap-app"
if [[ "${1:-}" == "--install" ]]; then
    PREFIX="${XDG_DATA_HOME:-$HOME/.local/share}"
    mkdir -p "$HOME/.local/opt" "$HOME/.local/bin" "$PREFIX/applications" "$PREFIX/icons/hicolor/256x256/apps" \
             "$PREFIX/icons/hicolor/scalable/apps"
    rm -rf "$HOME/.local/opt/mocap"
    cp -a dist/mocap "$HOME/.local/opt/mocap"
    ln -sf "$HOME/.local/opt/mocap/mocap-app" "$HOME/.local/bin/mocap-app"
    sed "s|^Exec=.*|Exec=$HOME/.local/opt/mocap/mocap-app %f|; s|^TryExec=.*|TryExec=$HOME/.local/opt/mocap/mocap-app|" \
        "$HERE/mocap.desktop" > "$PREFIX/applications/mocap.desktop"
    cp assets/icons/mocap-256.png "$PREFIX/icons/hicolor/256x256/apps/mocap.png"
    cp assets/icons/mocap.svg "$PREFIX/icons/hicolor/scalable/apps/mocap.svg"
    command -v update-desktop-database >/dev/null && update-desktop-database "$PREFIX/applications" || true
    echo "installed: $HOME/.local/bin/mocap-app and the 'mocap' menu entry"
fi
