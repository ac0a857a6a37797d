// Creates or replaces SCRAM-SHA-512 credentials on the local broker through the Kafka Admin
// API (AlterUserScramCredentials), which kafkajs lacks. Used by infra/stack.sh; run with the
// broker's own jars on the class path:
//   java -cp '.stack/lib/kafka/*' infra/kafka/ScramCredentials.java BOOTSTRAP ADMIN_USER ADMIN_PASSWORD_FILE CA_PEM_FILE
// stdin, one per line:  upsert USER PASSWORD_FILE
// Passwords are read from files so that they never appear on a command line. There is no delete:
// on Kafka 4.1.2 a broker restarted after a SCRAM credential was deleted authenticated no SCRAM
// user at all (infra/README.md); a principal is retired by replacing its password instead.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;

public class ScramCredentials {
  private static final int ITERATIONS = 8192;

  private static String secret(String file) throws Exception {
    String value = Files.readString(Path.of(file)).trim();
    if (value.isEmpty() || value.contains("\"")) throw new IllegalArgumentException("unusable password in " + file);
    return value;
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
    props.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
        + args[1] + "\" password=\"" + secret(args[2]) + "\";");
    props.put("request.timeout.ms", "20000");
    props.put("default.api.timeout.ms", "60000");

    List<UserScramCredentialAlteration> alterations = new ArrayList<>();
    List<String> done = new ArrayList<>();
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
    }
    if (alterations.isEmpty()) return;
    try (Admin admin = Admin.create(props)) {
      admin.alterUserScramCredentials(alterations).all().get();
    }
    for (String d : done) System.out.println(d);
  }
}
