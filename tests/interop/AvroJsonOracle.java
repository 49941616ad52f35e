// Avro's own Java JsonEncoder and JsonDecoder, as the reference for workers.avro_json_encoding.
// Run as a single-file program (java -cp '<avro jars>/*' AvroJsonOracle.java SCHEMA_FILE MODE).
// stdin: one item per line; stdout: one answer per line, in the same order.
//   MODE "to-json":   each line is an Avro binary body in hex; prints GenericDatumWriter + JsonEncoder output
//                     for the datum GenericDatumReader reads (no logical-type conversions, as the console
//                     consumer prints by default).
//   MODE "from-json": each line is Avro JSON; prints the binary body (hex) of what JsonDecoder reads,
//                     or "ERROR <message>" when Avro refuses it.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import org.apache.avro.Schema;
import org.apache.avro.generic.*;
import org.apache.avro.io.*;

public class AvroJsonOracle {
  public static void main(String[] args) throws Exception {
    Schema schema = new Schema.Parser().parse(Files.readString(Path.of(args[0])));
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
    GenericDatumReader<Object> reader = new GenericDatumReader<>(schema);
    GenericDatumWriter<Object> writer = new GenericDatumWriter<>(schema);
    String line;
    while ((line = in.readLine()) != null) {
      try {
        if (args[1].equals("to-json")) {
          Object datum = reader.read(null, DecoderFactory.get().binaryDecoder(hex(line), null));
          ByteArrayOutputStream json = new ByteArrayOutputStream();
          JsonEncoder encoder = EncoderFactory.get().jsonEncoder(schema, json);
          writer.write(datum, encoder);
          encoder.flush();
          out.println(json.toString(StandardCharsets.UTF_8));
        } else {
          Object datum = reader.read(null, DecoderFactory.get().jsonDecoder(schema, line));
          ByteArrayOutputStream body = new ByteArrayOutputStream();
          BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(body, null);
          writer.write(datum, encoder);
          encoder.flush();
          out.println(toHex(body.toByteArray()));
        }
      } catch (Exception e) {
        out.println("ERROR " + String.valueOf(e).replace('\n', ' '));
      }
    }
  }

  static byte[] hex(String s) {
    byte[] b = new byte[s.length() / 2];
    for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    return b;
  }

  static String toHex(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : b) s.append(String.format("%02x", x));
    return s.toString();
  }
}
