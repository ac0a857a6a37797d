// Creates or replaces SCRAM-SHA-512 credentials on the local broker through the Kafka Admin
// API (AlterUserScramCredentials), which kafkajs lacks. Used by infra/stack.sh; run with the
// broker's own jars on the class path:
//   java -cp '.stack/lib/kafka/*' infra/kafka/ScramCredentials.java BOOTSTRAP ADMIN_USER ADMIN_PASSWORD_FILE CA_PEM_FILE
// stdin, one per line:  upsert USER PASSWORD_FILE
// Passwords are read from files so that they never appear on a command line. There is no delete:
// on Kafka 4.1.2 a broker restarted after a SCRAM credential was deleted authenticated no SCRAM
// user at all (infra/README.md); a principal is retired by replacing its password instead.
// It returns once the broker authenticates each user with the new password: the controller
// acknowledges an alteration before the broker has applied it, and until then the old password
// still works.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.errors.SaslAuthenticationException;

public class ScramCredentials {
  private static final int ITERATIONS = 8192;

  private static String secret(String file) throws Exception {
    String value = Files.readString(Path.of(file)).trim();
    if (value.isEmpty() || value.contains("\"")) throw new IllegalArgumentException("unusable password in " + file);
    return value;
  }

  private static String jaas(String user, String password) {
    return "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
        + user + "\" password=\"" + password + "\";";
  }

  // True once the broker completes a SCRAM handshake for user/password; any later refusal
  // (authorization, for a principal without ACLs yet) still means the handshake passed.
  private static boolean authenticates(Properties base, String user, String password) throws Exception {
    Properties props = new Properties();
    props.putAll(base);
    props.put("sasl.jaas.config", jaas(user, password));
    props.put("request.timeout.ms", "10000");
    props.put("default.api.timeout.ms", "10000");
    try (Admin admin = Admin.create(props)) {
      admin.describeCluster().clusterId().get(15, TimeUnit.SECONDS);
      return true;
    } catch (ExecutionException e) {
      if (e.getCause() instanceof SaslAuthenticationException) return false;
      return true;
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: ScramCredentials BOOTSTRAP ADMIN_USER ADMIN_PASSWORD_FILE CA_PEM_FILE < commands");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("security.protocol", "SASL_SSL");
    props.put("ssl.truststore.type", "PEM");
    props.put("ssl.truststore.location", args[3]);
    props.put("sasl.mechanism", "SCRAM-SHA-512");
    props.put("sasl.jaas.config", jaas(args[1], secret(args[2])));
    props.put("request.timeout.ms", "20000");
    props.put("default.api.timeout.ms", "60000");

    List<UserScramCredentialAlteration> alterations = new ArrayList<>();
    List<String> done = new ArrayList<>();
    List<String[]> expected = new ArrayList<>();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    for (String line; (line = in.readLine()) != null; ) {
      String[] f = line.trim().split("\\s+");
      if (f.length == 0 || f[0].isEmpty()) continue;
      if (f[0].equals("upsert") && f.length == 3) {
        alterations.add(new UserScramCredentialUpsertion(
            f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, ITERATIONS), secret(f[2])));
      } else {
        throw new IllegalArgumentException("bad command line: " + f[0] + " (expected 'upsert USER FILE')");
      }
      done.add(f[0] + " " + f[1]);
      expected.add(new String[] {f[1], secret(f[2])});
    }
    if (alterations.isEmpty()) return;
    try (Admin admin = Admin.create(props)) {
      admin.alterUserScramCredentials(alterations).all().get();
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    for (String[] user : expected) {
      while (!authenticates(props, user[0], user[1])) {
        if (System.nanoTime() > deadline) throw new IllegalStateException("the broker did not take the new password of " + user[0] + " within 60 s");
        Thread.sleep(200);
      }
    }
    for (String d : done) System.out.println(d);
  }
}
