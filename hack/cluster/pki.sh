# Certificates of the local e2e control plane, made with openssl (sourced by up.sh).
# Everything lives under $PKI; existing files are kept, so restarts reuse one CA.

# new_ca NAME CN
new_ca() {
  [[ -f "$PKI/$1.crt" ]] && return
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

# new_cert NAME CA SUBJECT USAGE [SANS]   USAGE: serverAuth | clientAuth | serverAuth,clientAuth
new_cert() {
  local name="$1" ca="$2" subj="$3" usage="$4" sans="${5:-}"
  [[ -f "$PKI/$name.crt" ]] && return
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -newkey rsa:2048 -nodes -subj "$subj" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  new_ca ca "surge-cluster-ca"
  new_ca front-proxy-ca "surge-cluster-front-proxy-ca"
  new_cert apiserver ca "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:$SERVICE_IP"
  new_cert admin ca "/O=system:masters/CN=surge-admin" clientAuth
  new_cert kube-controller-manager ca "/CN=system:kube-controller-manager" clientAuth
  new_cert kube-scheduler ca "/CN=system:kube-scheduler" clientAuth
  # kwok, metrics-server and kube-state-metrics share one admin identity: they are test
  # infrastructure, and their RBAC is not what Surge tests.
  new_cert addons ca "/O=system:masters/CN=surge-cluster-addons" clientAuth
  new_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
  # The aggregator verifies the name <service>.<namespace>.svc of the APIService's Service.
  new_cert metrics-server ca "/CN=metrics-server" serverAuth \
    "DNS:metrics-server.kube-system.svc,DNS:localhost,IP:127.0.0.1"
  # Served by kwok as every node's kubelet endpoint (all nodes report InternalIP 127.0.0.1).
  new_cert kubelet ca "/CN=kwok-kubelet" serverAuth "DNS:localhost,IP:127.0.0.1"
  if [[ ! -f "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

# write_kubeconfig PATH CERT_NAME USER
write_kubeconfig() {
  local b64="base64 -w0"
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: surge
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $($b64 <"$PKI/$2.crt")
    client-key-data: $($b64 <"$PKI/$2.key")
contexts:
- name: surge
  context: {cluster: surge, user: $3}
current-context: surge
EOF
  chmod 600 "$1"
}
