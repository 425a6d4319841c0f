// A Java client of the tests: java.net.HttpURLConnection through an authenticating HTTP proxy,
// with the JDK's default properties (so `jdk.http.auth.tunneling.disabledSchemes=Basic`: Basic
// is refused for CONNECT tunnels, Digest is not). Run with the single-file source launcher:
//
//   java ProxyClient.java PROXY_PORT USER PASSWORD URL [CA_PEM]
//
// Prints the response status, then the body's first line, then the proxy challenges the JDK
// answered (from the Authenticator), one per line, and exits 0; on an I/O error prints
// `error: ...` and exits 2. CA_PEM, for an https URL, is the test CA the origin's certificate
// is signed by: it becomes the only trusted root (the JDK's own trust store is left alone).

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.net.Authenticator;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.PasswordAuthentication;
import java.net.Proxy;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class ProxyClient {
    public static void main(String[] args) throws Exception {
        int proxyPort = Integer.parseInt(args[0]);
        String user = args[1];
        char[] password = args[2].toCharArray();
        URL url = new URL(args[3]);
        List<String> asked = new ArrayList<>();
        Authenticator.setDefault(new Authenticator() {
            @Override
            protected PasswordAuthentication getPasswordAuthentication() {
                asked.add(getRequestorType() + " " + getRequestingScheme());
                if (getRequestorType() != RequestorType.PROXY) {
                    return null;
                }
                return new PasswordAuthentication(user, password);
            }
        });
        Proxy proxy = new Proxy(Proxy.Type.HTTP, new InetSocketAddress("127.0.0.1", proxyPort));
        try {
            HttpURLConnection conn = (HttpURLConnection) url.openConnection(proxy);
            if (conn instanceof HttpsURLConnection && args.length > 4) {
                KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
                trust.load(null, null);
                try (FileInputStream in = new FileInputStream(args[4])) {
                    trust.setCertificateEntry("test-ca",
                        CertificateFactory.getInstance("X.509").generateCertificate(in));
                }
                TrustManagerFactory tmf =
                    TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trust);
                SSLContext tls = SSLContext.getInstance("TLS");
                tls.init(null, tmf.getTrustManagers(), null);
                ((HttpsURLConnection) conn).setSSLSocketFactory(tls.getSocketFactory());
            }
            conn.setConnectTimeout(10000);
            conn.setReadTimeout(10000);
            int status = conn.getResponseCode();
            System.out.println(status);
            java.io.InputStream body = status < 400 ? conn.getInputStream() : conn.getErrorStream();
            String first = "";
            if (body != null) {
                try (BufferedReader r = new BufferedReader(
                        new InputStreamReader(body, StandardCharsets.UTF_8))) {
                    String line = r.readLine();
                    first = line == null ? "" : line;
                }
            }
            System.out.println(first);
            for (String a : asked) {
                System.out.println(a);
            }
        } catch (java.io.IOException e) {
            System.out.println("error: " + e);
            for (String a : asked) {
                System.out.println(a);
            }
            System.exit(2);
        }
    }
}
