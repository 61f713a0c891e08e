package strait.kclinterop;

import java.util.LinkedHashMap;
import java.util.Map;

/** Record payloads: {@code id=...;key=...;c=...;src=kinesis|kafka} (the id is unique per record). */
final class Payload {
    static String make(String id, String key, int counter, String source) {
        return "id=" + id + ";key=" + key + ";c=" + counter + ";src=" + source;
    }

    static Map<String, String> parse(String s) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String part : s.split(";")) {
            int eq = part.indexOf('=');
            if (eq > 0) m.put(part.substring(0, eq), part.substring(eq + 1));
        }
        return m;
    }
}
